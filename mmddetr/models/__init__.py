from .dense_heads import DeformableDETRHead, TwoStageProposalHead
from .detectors import DINO, DeformableDETR
from .fast import (ChannelsLastDetDataPreprocessor, FastDeformableDetrTransformerDecoderLayer,
                   FastDeformableDetrTransformerEncoderLayer, FastDropout, FastFFN, FastMultiheadAttention,
                   FastMultiScaleDeformableAttention)
from .layers import (DeformableDetrTransformerDecoder, DeformableDetrTransformerDecoderLayer,
                     DeformableDetrTransformerEncoder, DeformableDetrTransformerEncoderLayer, DinoTransformerDecoder,
                     MultiScaleDeformableAttention)
from .mmdet_attention import mmdet_attention, mmdet_uses_mmddetr_attention, use_mmddetr_attention_in_mmdet
from .task_modules import BBoxL1Cost, FocalLossCost, HungarianAssigner, IoUCost

__all__ = [
    'MultiScaleDeformableAttention', 'DeformableDetrTransformerEncoder', 'DeformableDetrTransformerEncoderLayer',
    'DeformableDetrTransformerDecoder', 'DeformableDetrTransformerDecoderLayer', 'DeformableDETRHead',
    'DinoTransformerDecoder', 'TwoStageProposalHead', 'DeformableDETR', 'DINO', 'HungarianAssigner', 'FocalLossCost',
    'BBoxL1Cost', 'IoUCost', 'FastMultiScaleDeformableAttention', 'FastDeformableDetrTransformerEncoderLayer',
    'FastDeformableDetrTransformerDecoderLayer', 'FastMultiheadAttention', 'FastFFN', 'FastDropout',
    'ChannelsLastDetDataPreprocessor', 'use_mmddetr_attention_in_mmdet', 'mmdet_uses_mmddetr_attention',
    'mmdet_attention'
]
