"""``mmddetr::ms_deform_attn``: the compiled op with its autograd and FLOP formulas, and the Python entry.

The op checks its inputs (``ops/ms_deform_attn.cpp``); this module only converts arguments for it.

CPU kernel: ``MMDDETR_CPU_KERNEL=baseline|avx2|auto`` (unset: auto) picks the variant every CPU kernel of the extension
runs, once per process at its first call: ``avx2`` is compiled for x86-64-v3 (AVX2, FMA), ``baseline`` for any
x86-64 CPU, and ``auto`` takes avx2 where the CPU has it. Asking for avx2 on a CPU without it is a ``ValueError`` at
the first call. ``MMDDETR_CPU_KERNEL=baseline python -m pytest tests`` runs the whole test suite on the baseline
kernels; :func:`extension_status` says which variant runs.
"""
import warnings

import torch
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

from .flops import ms_deform_attn_flop_formula
from .reference import multi_scale_deformable_attn_pytorch

try:
    from mmddetr import _C  # noqa: F401  (loading it registers torch.ops.mmddetr.*)
    _EXTENSION_ERROR = None
except ImportError as error:
    _EXTENSION_ERROR = error

_OP = 'mmddetr::ms_deform_attn'
_warned_devices = set()


# Device types with a kernel, looked up once (a constant for torch.compile). The meta kernel checks what needs no data
# and gives the output's shape; torch.compile and torch.export run it on fake tensors.
_KERNEL_DEVICES = frozenset() if _EXTENSION_ERROR is not None else frozenset(
    device for device, key in (('cpu', 'CPU'), ('cuda', 'CUDA'), ('meta', 'Meta'))
    if torch._C._dispatch_has_kernel_for_dispatch_key(_OP, key))


def extension_status() -> str:
    """Which kernels of the compiled extension are available and which CPU variant runs, or why it is absent.

    Raises ``ValueError`` where ``MMDDETR_CPU_KERNEL`` asks for what this CPU or build lacks.
    """
    if _EXTENSION_ERROR is not None:
        return f'not built ({_EXTENSION_ERROR}); using the PyTorch reference'
    devices = ', '.join(sorted(_KERNEL_DEVICES - {'meta'}))
    return f'kernels for {devices}; CPU kernel: {torch.ops.mmddetr.cpu_kernel()}'


if _EXTENSION_ERROR is None:

    def _setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    def _backward(ctx, grad_output):
        value, spatial_shapes, level_start_index, sampling_locations, attention_weights = ctx.saved_tensors
        grad_value, grad_locations, grad_weights = torch.ops.mmddetr.ms_deform_attn_backward(
            value, spatial_shapes, level_start_index, sampling_locations, attention_weights, grad_output.contiguous())
        return grad_value, None, None, grad_locations, grad_weights

    torch.library.register_autograd(_OP, _backward, setup_context=_setup_context)
    # its FLOPs for torch's FlopCounterMode (2 per multiply-add; mmddetr/ops/flops.py says what is counted)
    register_flop_formula(torch.ops.mmddetr.ms_deform_attn, get_raw=True)(ms_deform_attn_flop_formula)


def _require(condition: bool, argument: str, expected: str, got) -> None:
    if not condition:
        raise ValueError(f'multi_scale_deformable_attn: {argument} must be {expected}, got {got}')


def multi_scale_deformable_attn(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                                sampling_locations: Tensor, attention_weights: Tensor, im2col_step: int = 64) -> Tensor:
    """Multi-scale deformable attention (Deformable DETR, eq. 3), mmcv's argument order.

    Args:
        value (Tensor): (bs, num_keys, num_heads, head_dims), num_keys = sum of H_l * W_l.
        spatial_shapes (Tensor): (num_levels, 2) int64, (H_l, W_l) of each level.
        level_start_index (Tensor): (num_levels,) int64, first key of each level.
        sampling_locations (Tensor): (bs, num_queries, num_heads, num_levels, num_points, 2), normalised (x, y);
            points outside [0, 1] read zeros.
        attention_weights (Tensor): (bs, num_queries, num_heads, num_levels, num_points).
        im2col_step (int): kept for mmcv compatibility; our kernels need no batch chunking, so it changes nothing.

    Returns:
        Tensor: (bs, num_queries, num_heads * head_dims), value's dtype. Locations and weights are used in float32
        (float64 for float64 values), and all sums are taken in that precision.

    Bad inputs raise ``ValueError`` naming the argument and what was expected, from the op itself: ranks, sizes, dtypes
    and devices always; the levels (positive sizes summing to num_keys, their start indices) wherever the tensors hold
    data (on a GPU that reads them on the host), not for meta tensors or torch.compile / torch.export's fake tensors.
    Without the compiled extension, the PyTorch reference runs unchecked.

    On CPU, ``MMDDETR_CPU_KERNEL=baseline|avx2|auto`` picks the kernel variant (see this module's docstring); e.g.
    ``MMDDETR_CPU_KERNEL=baseline python -m pytest tests`` runs every test on the baseline kernels.
    """
    for name, tensor in (('value', value), ('spatial_shapes', spatial_shapes), ('level_start_index', level_start_index),
                         ('sampling_locations', sampling_locations), ('attention_weights', attention_weights)):
        _require(isinstance(tensor, Tensor), name, 'a torch.Tensor', type(tensor).__name__)
    _require(isinstance(im2col_step, int) and im2col_step > 0, 'im2col_step', 'a positive int', im2col_step)
    # the op takes locations and weights in value's opmath dtype; other dtypes go through for it to reject
    opmath = torch.float64 if value.dtype == torch.float64 else torch.float32
    sampling_locations, attention_weights = (t.to(opmath) if t.is_floating_point() else t
                                             for t in (sampling_locations, attention_weights))
    inputs = (value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
    if value.device.type in _KERNEL_DEVICES:
        return torch.ops.mmddetr.ms_deform_attn(*inputs)
    compiling = torch.compiler.is_compiling()
    if value.device.type not in _warned_devices and not compiling:
        _warned_devices.add(value.device.type)
        warnings.warn(f'mmddetr: no compiled multi_scale_deformable_attn kernel for {value.device.type} '
                      f'({extension_status()}); falling back to the slower PyTorch reference.')
    if _EXTENSION_ERROR is None:
        torch.ops.mmddetr.ms_deform_attn_check_inputs(*inputs)
    return multi_scale_deformable_attn_pytorch(*inputs)
