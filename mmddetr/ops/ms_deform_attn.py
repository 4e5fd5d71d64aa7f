"""``mmddetr::ms_deform_attn``: the compiled op with its autograd formula and fake kernel, and the Python entry."""
import warnings

import torch
from torch import Tensor

from .input_checks import check_inputs
from .reference import multi_scale_deformable_attn_pytorch

try:
    from mmddetr import _C  # noqa: F401  (loading it registers torch.ops.mmddetr.*)
    _EXTENSION_ERROR = None
except ImportError as error:
    _EXTENSION_ERROR = error

_OP = 'mmddetr::ms_deform_attn'
_warned_devices = set()


# Device types with a compiled kernel, looked up once (a constant for torch.compile).
_KERNEL_DEVICES = frozenset() if _EXTENSION_ERROR is not None else frozenset(
    device for device, key in (('cpu', 'CPU'), ('cuda', 'CUDA'))
    if torch._C._dispatch_has_kernel_for_dispatch_key(_OP, key))


def extension_status() -> str:
    """Which kernels of the compiled extension are available, or why it is absent."""
    if _EXTENSION_ERROR is not None:
        return f'not built ({_EXTENSION_ERROR}); using the PyTorch reference'
    return 'kernels for ' + ', '.join(sorted(_KERNEL_DEVICES))


if _EXTENSION_ERROR is None:

    @torch.library.register_fake(_OP)
    def _forward_fake(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
        bs, _, num_heads, head_dims = value.shape
        return value.new_empty(bs, sampling_locations.shape[1], num_heads * head_dims)

    @torch.library.register_fake('mmddetr::ms_deform_attn_backward')
    def _backward_fake(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, grad_output):
        return torch.empty_like(value), torch.empty_like(sampling_locations), torch.empty_like(attention_weights)

    def _setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    def _backward(ctx, grad_output):
        value, spatial_shapes, level_start_index, sampling_locations, attention_weights = ctx.saved_tensors
        grad_value, grad_locations, grad_weights = torch.ops.mmddetr.ms_deform_attn_backward(
            value, spatial_shapes, level_start_index, sampling_locations, attention_weights, grad_output.contiguous())
        return grad_value, None, None, grad_locations, grad_weights

    torch.library.register_autograd(_OP, _backward, setup_context=_setup_context)


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
    """
    compiling = torch.compiler.is_compiling()
    check_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, im2col_step,
                 check_values=not compiling)
    if value.device.type not in _KERNEL_DEVICES:
        if value.device.type not in _warned_devices and not compiling:
            _warned_devices.add(value.device.type)
            warnings.warn(f'mmddetr: no compiled multi_scale_deformable_attn kernel for {value.device.type} '
                          f'({extension_status()}); falling back to the slower PyTorch reference.')
        return multi_scale_deformable_attn_pytorch(value, spatial_shapes, level_start_index, sampling_locations,
                                                   attention_weights)
    opmath = torch.float64 if value.dtype == torch.float64 else torch.float32
    return torch.ops.mmddetr.ms_deform_attn(value, spatial_shapes, level_start_index, sampling_locations.to(opmath),
                                            attention_weights.to(opmath))
