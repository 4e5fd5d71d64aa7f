from .deformable_detr_decoder import DeformableDetrTransformerDecoder, DeformableDetrTransformerDecoderLayer
from .deformable_detr_encoder import DeformableDetrTransformerEncoder, DeformableDetrTransformerEncoderLayer
from .dino_decoder import DinoTransformerDecoder
from .multi_scale_deform_attn import MultiScaleDeformableAttention
from .sampling_point_recorder import SamplingPointRecorder, SamplingPoints
from .utils import key_centres, key_pixels, pixel_centres, refine_boxes

__all__ = [
    'MultiScaleDeformableAttention', 'DeformableDetrTransformerEncoder', 'DeformableDetrTransformerEncoderLayer',
    'DeformableDetrTransformerDecoder', 'DeformableDetrTransformerDecoderLayer', 'DinoTransformerDecoder',
    'SamplingPointRecorder', 'SamplingPoints', 'key_centres', 'key_pixels', 'pixel_centres', 'refine_boxes'
]
