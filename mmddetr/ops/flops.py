"""FLOPs of ``mmddetr::ms_deform_attn``: one formula, and its entries for torch's and mmengine's counters.

The forward of one call costs, per sampled point (batch x queries x heads x levels x points) and per channel of a
head, 4 multiply-adds for the bilinear interpolation (one per corner) and 1 for the attention-weighted sum: the
paper's ``5 N_q K C`` of its appendix A.1, with K = levels x points and C = heads x head channels. The bilinear and
attention weights themselves (a few operations per point, not per channel) are not counted, nor is the backward
(``mmddetr::ms_deform_attn_backward``).

What one FLOP is differs between the two counters, and each gets its own convention:

- torch's ``torch.utils.flop_counter.FlopCounterMode`` counts a multiply-add as 2 FLOPs (``2 x`` the multiply-adds);
  :mod:`mmddetr.ops.ms_deform_attn` registers :func:`ms_deform_attn_flop_formula` for it with the op itself.
- mmengine's ``FlopAnalyzer`` / ``get_model_complexity_info`` (fvcore's counter; mmdet's ``get_flops.py``), and
  the papers' GFLOPs, count a multiply-add as 1 FLOP. Nothing is registered there on import; pass
  ``MMENGINE_FLOP_HANDLES`` to an analyzer: ``FlopAnalyzer(model, inputs).set_op_handle(**MMENGINE_FLOP_HANDLES)``
  (:func:`mmddetr.analysis.flop_analyzer` does that).
"""
from typing import Sequence

from torch import Tensor


def ms_deform_attn_multiply_adds(value_shape: Sequence[int], sampling_locations_shape: Sequence[int]) -> int:
    """Multiply-adds of one forward call of the op.

    Args:
        value_shape (Sequence[int]): (bs, num_keys, num_heads, head_dims).
        sampling_locations_shape (Sequence[int]): (bs, num_queries, num_heads, num_levels, num_points, 2).

    Returns:
        int: ``5 * bs * num_queries * num_heads * num_levels * num_points * head_dims``.
    """
    if len(value_shape) != 4 or len(sampling_locations_shape) != 6:
        raise ValueError('ms_deform_attn_multiply_adds: value_shape must have 4 sizes and sampling_locations_shape 6, '
                         f'got {tuple(value_shape)} and {tuple(sampling_locations_shape)}')
    bs, num_queries, num_heads, num_levels, num_points, _ = sampling_locations_shape
    return 5 * bs * num_queries * num_heads * num_levels * num_points * value_shape[-1]


def ms_deform_attn_flop_formula(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                                sampling_locations: Tensor, attention_weights: Tensor, out_val=None) -> int:
    """torch's FlopCounterMode formula (``register_flop_formula(..., get_raw=True)``): 2 FLOPs per multiply-add."""
    return 2 * ms_deform_attn_multiply_adds(value.shape, sampling_locations.shape)


def ms_deform_attn_jit_handle(inputs: list, outputs: list) -> int:
    """mmengine's (fvcore's) jit handle: the op's inputs and outputs as ``torch._C.Value``; 1 FLOP per multiply-add.
    """
    value, _, _, sampling_locations, _ = inputs
    return ms_deform_attn_multiply_adds(value.type().sizes(), sampling_locations.type().sizes())


MMENGINE_FLOP_HANDLES = {'mmddetr::ms_deform_attn': ms_deform_attn_jit_handle}
