"""mmddetr: Deformable DETR components for MMDetection 3.x."""
__version__ = '0.1.0'
