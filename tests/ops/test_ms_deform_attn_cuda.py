"""CUDA kernels against the reference and mmcv's CUDA op; skipped where CUDA is absent."""
import pytest
import torch

from float32_sums import assert_sums_in_float32
from mmddetr.ops import extension_status, multi_scale_deformable_attn, multi_scale_deformable_attn_pytorch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


@pytest.fixture(autouse=True)
def compiled_cuda_kernel():
    """Every test here is about the compiled kernel: without it they would compare the PyTorch fallback with itself."""
    assert torch._C._dispatch_has_kernel_for_dispatch_key('mmddetr::ms_deform_attn', 'CUDA'), extension_status()


CASES = [
    (2, ((6, 4), (3, 2), (1, 1)), 2, 8, 5, 3),
    (3, ((1, 1),), 1, 1, 4, 2),
    (1, ((5, 7), (2, 3)), 3, 30, 6, 4),
    (2, ((16, 16), (8, 8), (4, 4), (2, 2)), 8, 32, 300, 4),
    (2, ((4, 3), (2, 2)), 1, 71, 4, 2),
    (1, ((2, 3), (1, 2)), 1, 1025, 2, 2),
    (65, ((3, 3), (2, 1)), 2, 32, 3, 2),  # batch above and not a multiple of im2col_step
    (2, ((3, 4),), 2, 4, 0, 2),
]


def _grads(fn, inputs, grad_out):
    leaves = [t.detach().clone().requires_grad_() for t in (inputs[0], inputs[3], inputs[4])]
    out = fn(leaves[0], inputs[1], inputs[2], leaves[1], leaves[2])
    return (out, *torch.autograd.grad(out, leaves, grad_out)) if out.numel() else (out, )


@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_cuda_matches_reference(msda_inputs, case, dtype):
    inputs = msda_inputs(*case, dtype=dtype, device='cuda')
    gen = torch.Generator().manual_seed(1)
    grad_out = torch.randn(case[0], case[4], case[2] * case[3], dtype=dtype, generator=gen).cuda()
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    for ours, ref in zip(_grads(multi_scale_deformable_attn, inputs, grad_out),
                         _grads(multi_scale_deformable_attn_pytorch, inputs, grad_out)):
        torch.testing.assert_close(ours, ref, **tol)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_cuda_half_precision_sums_in_float32(dtype):
    """Within one unit in the last place of the float32 reference on sums that 16-bit accumulation gets several units
    wrong (tests/ops/float32_sums.py; test_ms_deform_attn.py shows such a sum failing)."""
    assert_sums_in_float32(multi_scale_deformable_attn, dtype, device='cuda')


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_cuda_half_precision_matches_float32(msda_inputs, dtype):
    """16-bit outputs and gradients are the float32 kernel's on the same (rounded) values, up to the final rounding."""
    value, shapes, starts, locations, weights = msda_inputs(
        bs=2, shapes=((16, 16), (8, 8)), heads=8, dims=32, queries=100, dtype=torch.float32, device='cuda')
    value = value.to(dtype)
    grad_out = torch.randn(2, 100, 256, generator=torch.Generator().manual_seed(1)).to('cuda', dtype)
    half = (torch.ops.mmddetr.ms_deform_attn(value, shapes, starts, locations, weights),
            *torch.ops.mmddetr.ms_deform_attn_backward(value, shapes, starts, locations, weights, grad_out))
    full = (torch.ops.mmddetr.ms_deform_attn(value.float(), shapes, starts, locations, weights),
            *torch.ops.mmddetr.ms_deform_attn_backward(value.float(), shapes, starts, locations, weights,
                                                       grad_out.float()))
    assert half[0].dtype == half[1].dtype == dtype
    for ours, expected in zip(half[:2], full[:2]):  # the final rounding to dtype: half a unit in the last place
        torch.testing.assert_close(ours.float(), expected, rtol=torch.finfo(dtype).eps, atol=1e-4)
    for ours, expected in zip(half[2:], full[2:]):
        torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


def test_cuda_backward_is_flagged_nondeterministic(msda_inputs):
    """Under torch.use_deterministic_algorithms(True) the backward raises, with warn_only=True it warns."""
    value, shapes, starts, locations, weights = msda_inputs(device='cuda')
    leaf = value.requires_grad_()
    previous = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        torch.use_deterministic_algorithms(True)
        with pytest.raises(RuntimeError, match='ms_deform_attn_backward'):
            multi_scale_deformable_attn(leaf, shapes, starts, locations, weights).sum().backward()
        torch.use_deterministic_algorithms(True, warn_only=True)
        with pytest.warns(UserWarning, match='ms_deform_attn_backward'):
            multi_scale_deformable_attn(leaf, shapes, starts, locations, weights).sum().backward()
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


def test_cuda_gradcheck(msda_inputs):
    value, shapes, starts, locations, weights = msda_inputs(device='cuda')
    inputs = [t.requires_grad_() for t in (value, locations, weights)]
    # gradcheck runs each backward twice and compares the two: grad_value's float64 atomics add a one-hot
    # grad_output's terms (one query's 3 levels x 3 points x 4 corners, each at most 1) in a varying order, which
    # moves a sum by at most ~36 * 9 * 2**-52 < 1e-13
    assert torch.autograd.gradcheck(
        lambda v, loc, w: multi_scale_deformable_attn(v, shapes, starts, loc, w), inputs, eps=1e-6, atol=1e-5,
        nondet_tol=1e-12)


def test_cuda_matches_mmcv_cuda_op(msda_inputs):
    ext = pytest.importorskip('mmcv.ops.multi_scale_deform_attn')
    inputs = msda_inputs(bs=2, shapes=((16, 16), (8, 8)), heads=8, dims=32, queries=64, dtype=torch.float32,
                         device='cuda')
    expected = ext.MultiScaleDeformableAttnFunction.apply(*inputs, 64)
    torch.testing.assert_close(multi_scale_deformable_attn(*inputs), expected, rtol=1e-4, atol=1e-4)


def test_cuda_mixed_devices_rejected(msda_inputs):
    value, shapes, starts, locations, weights = msda_inputs(device='cuda')
    with pytest.raises(ValueError, match='sampling_locations'):
        multi_scale_deformable_attn(value, shapes, starts, locations.cpu(), weights)
