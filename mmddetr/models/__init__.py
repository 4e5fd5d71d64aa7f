from .layers import MultiScaleDeformableAttention
from .task_modules import BBoxL1Cost, FocalLossCost, HungarianAssigner, IoUCost

__all__ = ['MultiScaleDeformableAttention', 'HungarianAssigner', 'FocalLossCost', 'BBoxL1Cost', 'IoUCost']
