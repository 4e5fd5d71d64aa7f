from .deformable_detr_head import DeformableDETRHead
from .two_stage_proposal_head import TwoStageProposalHead

__all__ = ['DeformableDETRHead', 'TwoStageProposalHead']
