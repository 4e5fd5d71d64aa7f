from .deformable_detr_decoder import DeformableDetrTransformerDecoder, DeformableDetrTransformerDecoderLayer
from .deformable_detr_encoder import DeformableDetrTransformerEncoder, DeformableDetrTransformerEncoderLayer
from .fast_dropout import FastDropout
from .fast_paths import GradAwareReLU, use_fast_paths
from .multi_scale_deform_attn import MultiScaleDeformableAttention

__all__ = [
    'MultiScaleDeformableAttention', 'DeformableDetrTransformerEncoder', 'DeformableDetrTransformerEncoderLayer',
    'DeformableDetrTransformerDecoder', 'DeformableDetrTransformerDecoderLayer', 'FastDropout', 'GradAwareReLU', 'use_fast_paths'
]
