"""Multi-scale deformable attention op and the counter-based dropout (torch only)."""
from .dropout import dropout
from .ms_deform_attn import extension_status, multi_scale_deformable_attn
from .reference import multi_scale_deformable_attn_pytorch

__all__ = ['dropout', 'multi_scale_deformable_attn', 'multi_scale_deformable_attn_pytorch', 'extension_status']
