from .deformable_detr import DeformableDETR
from .dino import DINO

__all__ = ['DeformableDETR', 'DINO']
