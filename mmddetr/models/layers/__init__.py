from .deformable_detr_decoder import DeformableDetrTransformerDecoder, DeformableDetrTransformerDecoderLayer
from .deformable_detr_encoder import DeformableDetrTransformerEncoder, DeformableDetrTransformerEncoderLayer
from .multi_scale_deform_attn import MultiScaleDeformableAttention

__all__ = [
    'MultiScaleDeformableAttention', 'DeformableDetrTransformerEncoder', 'DeformableDetrTransformerEncoderLayer',
    'DeformableDetrTransformerDecoder', 'DeformableDetrTransformerDecoderLayer'
]
