"""What tells a 16-bit kernel that sums in float32 from one that sums in 16 bits: a case of long sums of positive terms
of similar size, and a check to within one unit in the last place of the float32 reference rounded to the dtype.

Shared by the CPU, the CPU-variant (imported in a fresh process) and the CUDA tests.
"""
import torch

from mmddetr.ops import multi_scale_deformable_attn_pytorch


def accumulation_case(dtype, device='cpu'):
    """(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, grad_output); value and
    grad_output in ``dtype``, the rest float32.

    Every output is a sum of 2 levels x 32 points of positive terms near 1, every value gradient one of hundreds of
    such terms; with no cancellation, float32 sums are exact to far below a 16-bit unit in the last place. Summed in
    16 bits, each addition rounds at the partial sum's magnitude, and many outputs end more than one unit off
    (``tests/ops/test_ms_deform_attn.py`` shows it).
    """
    gen = torch.Generator().manual_seed(0)
    bs, queries, heads, dims, levels, points = 1, 20, 2, 32, 2, 32
    spatial_shapes, level_start_index = torch.tensor([[4, 4], [2, 2]]), torch.tensor([0, 16])
    value = 1 + 0.25 * torch.rand(bs, 20, heads, dims, generator=gen)
    locations = torch.rand(bs, queries, heads, levels, points, 2, generator=gen)
    weights = 0.5 + 0.5 * torch.rand(bs, queries, heads, levels, points, generator=gen)
    grad_output = 1 + 0.25 * torch.rand(bs, queries, heads * dims, generator=gen)
    return (value.to(device, dtype), spatial_shapes.to(device), level_start_index.to(device), locations.to(device),
            weights.to(device), grad_output.to(device, dtype))


def ulps_off(actual, expected):
    """|actual - expected rounded to actual's dtype|, in units in the last place of the rounded value."""
    info = torch.finfo(actual.dtype)
    rounded = expected.to(actual.dtype).double()
    ulp = info.eps * torch.exp2(torch.floor(torch.log2(rounded.abs().clamp_min(info.tiny))))
    return (actual.double() - rounded).abs() / ulp


def forward_backward(fn, value, spatial_shapes, level_start_index, sampling_locations, attention_weights,
                     grad_output):
    """fn's output and the gradients of value, sampling_locations and attention_weights for ``grad_output``."""
    leaves = [t.detach().clone().requires_grad_() for t in (value, sampling_locations, attention_weights)]
    out = fn(leaves[0], spatial_shapes, level_start_index, leaves[1], leaves[2])
    return (out, *torch.autograd.grad(out, leaves, grad_output))


def assert_sums_in_float32(fn, dtype, device='cpu'):
    """``fn`` on the accumulation case in ``dtype``: output and value gradient within one unit in the last place of the
    float32 reference's (on the same rounded values), the float32 location and weight gradients equal to float32's."""
    value, shapes, starts, locations, weights, grad_output = accumulation_case(dtype, device)
    ours = forward_backward(fn, value, shapes, starts, locations, weights, grad_output)
    reference = forward_backward(multi_scale_deformable_attn_pytorch, value.float(), shapes, starts, locations,
                                 weights, grad_output.float())
    for name, actual, expected in zip(('output', 'grad value'), ours, reference):
        assert actual.dtype == dtype, (name, actual.dtype)
        worst = ulps_off(actual, expected).max().item()
        assert worst <= 1, f'{name} {dtype}: {worst} units in the last place from the float32 reference'
    for name, actual, expected in zip(('grad locations', 'grad weights'), ours[2:], reference[2:]):
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4, msg=lambda m: f'{name} {dtype}: {m}')
