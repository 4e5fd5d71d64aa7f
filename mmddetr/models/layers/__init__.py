from .deformable_detr_decoder import DeformableDetrTransformerDecoder, DeformableDetrTransformerDecoderLayer
from .deformable_detr_encoder import DeformableDetrTransformerEncoder, DeformableDetrTransformerEncoderLayer
from .dino_decoder import DinoTransformerDecoder
from .fast_dropout import FastDropout
from .fast_ffn import FastFFN, GradAwareReLU
from .fast_multihead_attention import FastMultiheadAttention, OutputOnlyMultiheadAttention
from .multi_scale_deform_attn import MultiScaleDeformableAttention
from .utils import key_pixels, pixel_centres, refine_boxes

__all__ = [
    'MultiScaleDeformableAttention', 'DeformableDetrTransformerEncoder', 'DeformableDetrTransformerEncoderLayer',
    'DeformableDetrTransformerDecoder', 'DeformableDetrTransformerDecoderLayer', 'DinoTransformerDecoder',
    'FastDropout', 'FastFFN', 'FastMultiheadAttention', 'OutputOnlyMultiheadAttention', 'GradAwareReLU', 'key_pixels',
    'pixel_centres', 'refine_boxes'
]
