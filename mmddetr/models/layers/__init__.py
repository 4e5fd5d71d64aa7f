from .multi_scale_deform_attn import MultiScaleDeformableAttention

__all__ = ['MultiScaleDeformableAttention']
