from .deformable_detr_decoder import DeformableDetrTransformerDecoder, DeformableDetrTransformerDecoderLayer
from .deformable_detr_encoder import DeformableDetrTransformerEncoder, DeformableDetrTransformerEncoderLayer
from .fast_dropout import FastDropout
from .fast_ffn import FastFFN, GradAwareReLU
from .multi_scale_deform_attn import MultiScaleDeformableAttention
from .utils import key_pixels, pixel_centres, refine_boxes

__all__ = [
    'MultiScaleDeformableAttention', 'DeformableDetrTransformerEncoder', 'DeformableDetrTransformerEncoderLayer',
    'DeformableDetrTransformerDecoder', 'DeformableDetrTransformerDecoderLayer', 'FastDropout', 'FastFFN',
    'GradAwareReLU', 'key_pixels', 'pixel_centres', 'refine_boxes'
]
