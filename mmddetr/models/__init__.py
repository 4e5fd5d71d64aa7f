from .dense_heads import DeformableDETRHead, TwoStageProposalHead
from .detectors import DeformableDETR
from .layers import (DeformableDetrTransformerDecoder, DeformableDetrTransformerDecoderLayer,
                     DeformableDetrTransformerEncoder, DeformableDetrTransformerEncoderLayer,
                     MultiScaleDeformableAttention)
from .task_modules import BBoxL1Cost, FocalLossCost, HungarianAssigner, IoUCost

__all__ = [
    'MultiScaleDeformableAttention', 'DeformableDetrTransformerEncoder', 'DeformableDetrTransformerEncoderLayer',
    'DeformableDetrTransformerDecoder', 'DeformableDetrTransformerDecoderLayer', 'DeformableDETRHead',
    'TwoStageProposalHead', 'DeformableDETR', 'HungarianAssigner', 'FocalLossCost', 'BBoxL1Cost', 'IoUCost'
]
