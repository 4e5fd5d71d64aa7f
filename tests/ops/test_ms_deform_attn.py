"""The compiled CPU op against the grid_sample reference: forward, gradients, dtypes, compile/export and bad input."""
import os
import subprocess
import sys
import warnings

import pytest
import torch

from float32_sums import accumulation_case, assert_sums_in_float32, ulps_off
from mmddetr.ops import extension_status, multi_scale_deformable_attn, multi_scale_deformable_attn_pytorch
from mmddetr.ops import ms_deform_attn as op_module

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def compiled_cpu_kernel():
    """Without the compiled kernel the entry runs the reference, and the tests here would compare it with itself."""
    assert torch._C._dispatch_has_kernel_for_dispatch_key('mmddetr::ms_deform_attn', 'CPU'), extension_status()
    assert 'cpu' in op_module._KERNEL_DEVICES  # what multi_scale_deformable_attn sends to the kernel


CASES = [
    # bs, (H, W) per level, heads, head dims, queries, points
    (2, ((6, 4), (3, 2), (1, 1)), 2, 8, 5, 3),
    (3, ((1, 1),), 1, 1, 4, 2),
    (1, ((5, 7), (2, 3)), 3, 30, 6, 4),
    (2, ((4, 4), (2, 2), (1, 1), (1, 1)), 8, 32, 7, 4),
    (1, ((3, 5),), 2, 64, 3, 1),
    (2, ((4, 3), (2, 2)), 1, 71, 4, 2),
    (1, ((2, 3), (1, 2)), 1, 1025, 2, 2),
    (5, ((3, 3), (2, 1)), 2, 4, 3, 2),  # batch not a multiple of im2col_step=2 below
    (2, ((3, 4),), 2, 4, 0, 2),  # zero queries
]


def relative_error(actual, expected):
    return ((actual - expected).abs().max() / expected.abs().max().clamp_min(1e-30)).item()


@pytest.mark.parametrize('case', CASES)
def test_forward_matches_reference_float64(msda_inputs, case):
    inputs = msda_inputs(*case)
    out = multi_scale_deformable_attn(*inputs, im2col_step=2)
    ref = multi_scale_deformable_attn_pytorch(*inputs)
    assert out.shape == ref.shape == (case[0], case[4], case[2] * case[3])
    assert torch.equal(out, multi_scale_deformable_attn(*inputs))  # im2col_step changes nothing
    if out.numel():
        assert relative_error(out, ref) <= 1e-10


@pytest.mark.parametrize('case', CASES)
def test_forward_matches_reference_float32(msda_inputs, case):
    inputs = msda_inputs(*case, dtype=torch.float32)
    torch.testing.assert_close(multi_scale_deformable_attn(*inputs), multi_scale_deformable_attn_pytorch(*inputs),
                               rtol=1e-5, atol=1e-5)


def test_forward_non_contiguous_inputs(msda_inputs):
    value, shapes, starts, locations, weights = msda_inputs(bs=2, heads=4, dims=6, queries=9)
    # the same numbers, stored transposed
    value_t = value.transpose(0, 1).contiguous().transpose(0, 1)
    locations_t = torch.stack([locations, locations], -1)[..., 0]
    weights_t = weights.transpose(1, 3).contiguous().transpose(1, 3)
    assert not (value_t.is_contiguous() or locations_t.is_contiguous() or weights_t.is_contiguous())
    out = multi_scale_deformable_attn(value_t, shapes, starts, locations_t, weights_t)
    assert relative_error(out, multi_scale_deformable_attn_pytorch(value, shapes, starts, locations, weights)) <= 1e-10


def test_boundary_and_non_finite_locations(msda_inputs):
    value, shapes, starts, locations, weights = msda_inputs(bs=1, queries=6, spread=0.0)
    # exactly on pixel centres, on the map edges, just outside, far outside and NaN
    special = torch.tensor([0.0, 1.0, -0.01, 1.01, -1e9, 1e9, float('nan'), float('inf')], dtype=torch.float64)
    locations.view(-1)[:special.numel() * 6] = special.repeat(6)
    out = multi_scale_deformable_attn(value, shapes, starts, locations, weights)
    finite = torch.nan_to_num(locations, nan=-5.0, posinf=5.0, neginf=-5.0)
    assert torch.isfinite(out).all()
    assert relative_error(out, multi_scale_deformable_attn_pytorch(value, shapes, starts, finite, weights)) <= 1e-10


@pytest.mark.parametrize('case', [CASES[0], CASES[2], CASES[5], CASES[7]])
def test_gradcheck_float64(msda_inputs, case):
    value, shapes, starts, locations, weights = msda_inputs(*case[:3], min(case[3], 8), *case[4:])
    inputs = [t.requires_grad_() for t in (value, locations, weights)]
    assert torch.autograd.gradcheck(
        lambda v, loc, w: multi_scale_deformable_attn(v, shapes, starts, loc, w), inputs, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize('bs, heads, queries', [(2, 8, 40), (1, 1, 1200)])  # (1, 1, 1200): queries split by thread
def test_backward_matches_reference_float32(msda_inputs, bs, heads, queries):
    inputs = list(msda_inputs(bs=bs, heads=heads, dims=32, queries=queries, points=4, dtype=torch.float32))
    grad_out = torch.randn(bs, queries, heads * 32, generator=torch.Generator().manual_seed(1))

    def grads(fn):
        leaves = [t.detach().clone().requires_grad_() for t in (inputs[0], inputs[3], inputs[4])]
        out = fn(leaves[0], inputs[1], inputs[2], leaves[1], leaves[2])
        return torch.autograd.grad(out, leaves, grad_out)

    torch.set_num_threads(2)
    for ours, ref in zip(grads(multi_scale_deformable_attn), grads(multi_scale_deformable_attn_pytorch)):
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_half_precision_sums_in_float32(dtype):
    """16-bit outputs and value gradients within one unit in the last place of float32's on long sums."""
    assert_sums_in_float32(multi_scale_deformable_attn, dtype)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_half_precision_check_fails_sums_in_16_bits(dtype):
    """The check above can fail: the accumulation case's terms (one per level and point, each computed in float32 and
    rounded to dtype), added one by one in dtype as a kernel summing in dtype would, end more than one unit off."""
    value, shapes, starts, locations, weights, _ = accumulation_case(dtype)
    value = value.float()
    levels, points = weights.shape[-2:]
    total = 0
    for sample in range(levels * points):
        alone = torch.zeros(levels * points)
        alone[sample] = 1
        term = multi_scale_deformable_attn_pytorch(value, shapes, starts, locations,
                                                   weights * alone.view(levels, points))
        total = total + term.to(dtype)
    expected = multi_scale_deformable_attn_pytorch(value, shapes, starts, locations, weights)
    assert total.dtype == dtype and ulps_off(total, expected).max() > 1


def test_low_precision_locations_are_upcast(msda_inputs):
    value, shapes, starts, locations, weights = msda_inputs(dtype=torch.float32)
    locations_half = locations.half().requires_grad_()
    out = multi_scale_deformable_attn(value, shapes, starts, locations_half, weights)
    out.sum().backward()
    assert out.dtype == torch.float32 and locations_half.grad.dtype == torch.float16


class _Sampler(torch.nn.Module):
    """Predicts locations and weights from queries, as the attention module does."""

    def __init__(self, heads=2, levels=2, points=3, dims=8):
        super().__init__()
        self.shape = (heads, levels, points)
        self.offsets = torch.nn.Linear(dims, heads * levels * points * 2)
        self.weights = torch.nn.Linear(dims, heads * levels * points)

    def forward(self, value, spatial_shapes, level_start_index, query):
        bs, num_queries, _ = query.shape
        locations = self.offsets(query).view(bs, num_queries, *self.shape, 2).sigmoid()
        weights = self.weights(query).view(bs, num_queries, self.shape[0], -1).softmax(-1)
        return multi_scale_deformable_attn(value, spatial_shapes, level_start_index, locations,
                                           weights.view(bs, num_queries, *self.shape))


@pytest.mark.parametrize('backend, dynamic', [('aot_eager', False), ('inductor', False), ('aot_eager', True)])
def test_torch_compile_fullgraph(msda_inputs, backend, dynamic):
    value, shapes, starts, _, _ = msda_inputs(bs=2, shapes=((4, 4), (2, 2)), heads=2, dims=4, dtype=torch.float32)
    torch.manual_seed(0)  # the sampler's initial weights
    model, query = _Sampler(dims=8), torch.randn(2, 5, 8)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend=backend, dynamic=dynamic)
    value_eager, value_compiled = value.clone().requires_grad_(), value.clone().requires_grad_()
    expected, out = model(value_eager, shapes, starts, query), compiled(value_compiled, shapes, starts, query)
    torch.testing.assert_close(out, expected)
    expected.sum().backward()
    out.sum().backward()
    torch.testing.assert_close(value_compiled.grad, value_eager.grad)


def test_torch_export(msda_inputs):
    value, shapes, starts, _, _ = msda_inputs(bs=2, shapes=((4, 4), (2, 2)), heads=2, dims=4, dtype=torch.float32)
    torch.manual_seed(0)  # the sampler's initial weights
    model, query = _Sampler(dims=8), torch.randn(2, 5, 8)
    exported = torch.export.export(model, (value, shapes, starts, query))
    assert 'mmddetr.ms_deform_attn' in str(exported.graph)
    torch.testing.assert_close(exported.module()(value, shapes, starts, query), model(value, shapes, starts, query))


def test_direct_op_call_rejects_inconsistent_levels(msda_inputs):
    value, shapes, starts, locations, weights = msda_inputs()
    grad_output = torch.zeros(value.shape[0], locations.shape[1], value.shape[2] * value.shape[3], dtype=value.dtype)
    for op, extra in ((torch.ops.mmddetr.ms_deform_attn, ()), (torch.ops.mmddetr.ms_deform_attn_backward,
                                                                 (grad_output, ))):
        with pytest.raises(ValueError, match='level_start_index must be the cumulative H\\*W of spatial_shapes'):
            op(value, shapes, starts + 1, locations, weights, *extra)
        with pytest.raises(ValueError, match="spatial_shapes must be levels whose H\\*W sum to value's num_keys"):
            op(value, shapes * 2, starts, locations, weights, *extra)


def test_fake_tensors_get_the_checks_that_need_no_data(msda_inputs):
    """What torch.compile and torch.export trace with: shapes are checked, level values (which fakes lack) are not."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    inputs, mode = msda_inputs(queries=5), FakeTensorMode()
    with mode:
        value, shapes, starts, locations, weights = (mode.from_tensor(t) for t in inputs)
        out = torch.ops.mmddetr.ms_deform_attn(value, shapes * 2, starts + 1, locations, weights)
        assert out.shape == (2, 5, 16) and out.device.type == 'cpu'
        with pytest.raises(ValueError, match='multi_scale_deformable_attn: attention_weights must be of shape'):
            torch.ops.mmddetr.ms_deform_attn(value, shapes, starts, locations, weights[:, :2])


def _bad_inputs(make):
    value, shapes, starts, locations, weights = make()
    good = dict(value=value, spatial_shapes=shapes, level_start_index=starts, sampling_locations=locations,
                attention_weights=weights)
    return [
        ('value', dict(good, value=value[0])),
        ('value', dict(good, value=value.long())),
        ('value', dict(good, value=value.tolist())),
        ('spatial_shapes', dict(good, spatial_shapes=shapes.int())),
        ('spatial_shapes', dict(good, spatial_shapes=shapes[:, :1])),
        ('spatial_shapes', dict(good, spatial_shapes=shapes + 1)),  # levels no longer sum to num_keys
        ('spatial_shapes', dict(good, spatial_shapes=shapes.new_zeros(0, 2))),
        ('spatial_shapes', dict(good, spatial_shapes=torch.tensor([[6, 4], [3, 2], [0, 1]]))),
        ('level_start_index', dict(good, level_start_index=starts[:2])),
        ('level_start_index', dict(good, level_start_index=starts.flip(0))),
        ('sampling_locations', dict(good, sampling_locations=locations[..., 0])),
        ('sampling_locations', dict(good, sampling_locations=locations[:1])),
        ('sampling_locations', dict(good, sampling_locations=locations[:, :, :1])),
        ('sampling_locations', dict(good, sampling_locations=locations.long())),
        ('attention_weights', dict(good, attention_weights=weights[..., :1])),
        ('attention_weights', dict(good, attention_weights=weights.to('meta'))),
        ('level_start_index', dict(good, level_start_index=starts.to('meta'))),
    ]


@pytest.mark.parametrize('index', range(17))
def test_bad_input_raises_value_error_naming_argument(msda_inputs, index):
    argument, kwargs = _bad_inputs(msda_inputs)[index]
    with pytest.raises(ValueError, match=argument):
        multi_scale_deformable_attn(**kwargs)


def test_bad_im2col_step(msda_inputs):
    with pytest.raises(ValueError, match='im2col_step'):
        multi_scale_deformable_attn(*msda_inputs(), im2col_step=0)


def test_reference_fallback_warns_once(msda_inputs, monkeypatch):
    monkeypatch.setattr(op_module, '_KERNEL_DEVICES', frozenset())
    monkeypatch.setattr(op_module, '_warned_devices', set())
    inputs = msda_inputs()
    with pytest.warns(UserWarning, match='falling back'):
        out = multi_scale_deformable_attn(*inputs)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        multi_scale_deformable_attn(*inputs)
    torch.testing.assert_close(out, multi_scale_deformable_attn_pytorch(*inputs))


def test_without_the_extension_the_reference_runs_unchecked():
    """A process where ``mmddetr._C`` does not load: the status says so, the entry warns and runs the reference, and
    inputs that the op's checks reject (a shifted level_start_index) go through."""
    code = """
import sys, warnings, torch
sys.modules['mmddetr._C'] = None  # importing it fails, as where it was never built
from mmddetr.ops import extension_status, multi_scale_deformable_attn, multi_scale_deformable_attn_pytorch
gen = torch.Generator().manual_seed(0)
value, locations = torch.randn(1, 6, 1, 2, generator=gen), torch.rand(1, 3, 1, 2, 2, 2, generator=gen)
weights, shapes = torch.rand(1, 3, 1, 2, 2, generator=gen), torch.tensor([[2, 2], [1, 2]])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    out = multi_scale_deformable_attn(value, shapes, torch.tensor([0, 4]), locations, weights)
    multi_scale_deformable_attn(value, shapes, torch.tensor([1, 4]), locations, weights)
assert torch.equal(out, multi_scale_deformable_attn_pytorch(value, shapes, torch.tensor([0, 4]), locations, weights))
print(extension_status())
print(*[str(w.message) for w in caught], sep='\\n')
"""
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    status, *warned = proc.stdout.splitlines()
    assert status.startswith('not built (') and status.endswith('); using the PyTorch reference')
    assert len(warned) == 1 and 'falling back to the slower PyTorch reference' in warned[0], warned
