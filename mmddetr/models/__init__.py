from .layers import MultiScaleDeformableAttention

__all__ = ['MultiScaleDeformableAttention']
