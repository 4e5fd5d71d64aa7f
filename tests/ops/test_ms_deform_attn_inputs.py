"""The op's inputs at the edges: every bad input rejected naming the argument (by the op itself, on every path),
meta inputs, empty and non-finite inputs, indices past int32, and resident memory over many calls."""
import os

import pytest
import torch

from mmddetr.ops import extension_status, multi_scale_deformable_attn, multi_scale_deformable_attn_pytorch
from mmddetr.ops import ms_deform_attn as op_module


@pytest.fixture(autouse=True)
def compiled_cpu_kernel():
    """The op's own checks and kernels are under test: without them the entry runs the reference, unchecked."""
    assert torch._C._dispatch_has_kernel_for_dispatch_key('mmddetr::ms_deform_attn', 'CPU'), extension_status()
    assert 'cpu' in op_module._KERNEL_DEVICES  # what multi_scale_deformable_attn sends to the kernel


NAMES = ('value', 'spatial_shapes', 'level_start_index', 'sampling_locations', 'attention_weights')


def _with(**changes):
    """A bad-input case: the good inputs (keyword dict ``g``) with ``changes``, each a function of ``g``."""
    return lambda g: dict(g, **{name: change(g) for name, change in changes.items()})


# case: (argument the error must name, inputs)
BAD_INPUTS = {
    'value 5-d': ('value', _with(value=lambda g: g['value'][None])),
    'value complex': ('value', _with(value=lambda g: g['value'].to(torch.complex128))),
    'value bool': ('value', _with(value=lambda g: g['value'] > 0)),
    'spatial_shapes 1-d': ('spatial_shapes', _with(spatial_shapes=lambda g: g['spatial_shapes'].flatten())),
    'spatial_shapes 3-d': ('spatial_shapes', _with(spatial_shapes=lambda g: g['spatial_shapes'][None])),
    'spatial_shapes float': ('spatial_shapes', _with(spatial_shapes=lambda g: g['spatial_shapes'].float())),
    'spatial_shapes negative': ('spatial_shapes', _with(spatial_shapes=lambda g: -g['spatial_shapes'])),
    'spatial_shapes sum below num_keys': ('spatial_shapes', _with(spatial_shapes=lambda g: g['spatial_shapes'] - 1)),
    'spatial_shapes meta': ('spatial_shapes', _with(spatial_shapes=lambda g: g['spatial_shapes'].to('meta'))),
    'level_start_index int32': ('level_start_index', _with(level_start_index=lambda g: g['level_start_index'].int())),
    'level_start_index 2-d': ('level_start_index', _with(level_start_index=lambda g: g['level_start_index'][None])),
    'level_start_index list': ('level_start_index',
                               _with(level_start_index=lambda g: g['level_start_index'].tolist())),
    'level_start_index shifted': ('level_start_index', _with(level_start_index=lambda g: g['level_start_index'] + 1)),
    'sampling_locations (x, y, z)': ('sampling_locations', _with(
        sampling_locations=lambda g: torch.cat([g['sampling_locations']] * 2, -1)[..., :3])),
    'sampling_locations fewer levels': ('sampling_locations', _with(
        sampling_locations=lambda g: g['sampling_locations'][:, :, :, :2],
        attention_weights=lambda g: g['attention_weights'][:, :, :, :2])),
    'sampling_locations other batch': ('sampling_locations', _with(
        sampling_locations=lambda g: g['sampling_locations'][:1],
        attention_weights=lambda g: g['attention_weights'][:1])),
    'sampling_locations meta': ('sampling_locations',
                                _with(sampling_locations=lambda g: g['sampling_locations'].to('meta'))),
    'attention_weights 6-d': ('attention_weights',
                              _with(attention_weights=lambda g: g['attention_weights'][..., None])),
    'attention_weights fewer queries': ('attention_weights',
                                        _with(attention_weights=lambda g: g['attention_weights'][:, :2])),
    'attention_weights other points': ('attention_weights',
                                       _with(attention_weights=lambda g: g['attention_weights'][..., :2])),
    'attention_weights int': ('attention_weights', _with(attention_weights=lambda g: g['attention_weights'].long())),
    'attention_weights bool': ('attention_weights', _with(attention_weights=lambda g: g['attention_weights'] > 0.5)),
    'value meta, the rest not': ('sampling_locations', _with(value=lambda g: g['value'].to('meta'))),
    'all meta, attention_weights fewer queries': ('attention_weights', lambda g: {
        name: (t[:, :2] if name == 'attention_weights' else t).to('meta') for name, t in g.items()}),
}


@pytest.mark.parametrize('path', ['kernel', 'reference fallback'])
@pytest.mark.parametrize('case', list(BAD_INPUTS))
def test_bad_input_names_the_argument(msda_inputs, monkeypatch, case, path):
    if path == 'reference fallback':  # a device without a kernel: the op's checks run before the reference
        monkeypatch.setattr(op_module, '_KERNEL_DEVICES', frozenset())
        monkeypatch.setattr(op_module, '_warned_devices', {'cpu', 'meta'})
    argument, make_inputs = BAD_INPUTS[case]
    with pytest.raises(ValueError, match=f'multi_scale_deformable_attn: {argument} must be'):
        multi_scale_deformable_attn(**make_inputs(dict(zip(NAMES, msda_inputs()))))


@pytest.mark.parametrize('op', ['forward', 'backward'])
@pytest.mark.parametrize('case', [case for case in BAD_INPUTS if case != 'level_start_index list'])
def test_the_op_itself_rejects_bad_input_naming_the_argument(msda_inputs, case, op):
    """The checks are the op's: a direct torch.ops call, given what the Python entry would pass, fails alike."""
    good = dict(zip(NAMES, msda_inputs()))
    argument, make_inputs = BAD_INPUTS[case]
    inputs = [make_inputs(good)[name] for name in NAMES]
    with pytest.raises(ValueError, match=f'multi_scale_deformable_attn: {argument} must be'):
        if op == 'forward':
            torch.ops.mmddetr.ms_deform_attn(*inputs)
        else:
            bs, num_queries, heads = good['sampling_locations'].shape[:3]
            grad_output = torch.zeros(bs, num_queries, heads * good['value'].shape[3], dtype=good['value'].dtype,
                                      device=inputs[0].device)
            torch.ops.mmddetr.ms_deform_attn_backward(*inputs, grad_output)


def test_meta_inputs_get_the_checks_that_need_no_data(msda_inputs):
    """Meta tensors (as torch.compile's fake tensors) have shapes but no values: levels that do not add up pass."""
    value, shapes, starts, locations, weights = (t.to('meta') for t in msda_inputs(bs=2, heads=2, dims=8, queries=5))
    out = multi_scale_deformable_attn(value, shapes + 1, starts - 1, locations, weights)
    assert out.device.type == 'meta' and out.shape == (2, 5, 16)
    grads = torch.ops.mmddetr.ms_deform_attn_backward(value, shapes, starts, locations, weights, out)
    assert [g.shape for g in grads] == [value.shape, locations.shape, weights.shape]
    with pytest.raises(ValueError, match='multi_scale_deformable_attn: grad_output must be'):
        torch.ops.mmddetr.ms_deform_attn_backward(value, shapes, starts, locations, weights, out[:, :1])


def _one_element(*shape, dtype=torch.float64):
    """A tensor of ``shape`` that allocates a single element."""
    return torch.zeros((), dtype=dtype).expand(*shape)


@pytest.mark.parametrize('argument, inputs, expected', [
    ('spatial_shapes', dict(value=(1, 2**31, 1, 1), shape=(2, 2**30), heads=1, levels=1, points=1),
     'at most 2\\*\\*31 - 1 pixels'),
    ('value', dict(value=(1, 1, 2**31, 1), shape=(1, 1), heads=2**31, levels=1, points=1), 'heads and head dims'),
    ('value', dict(value=(1, 1, 1, 2**31), shape=(1, 1), heads=1, levels=1, points=1), 'heads and head dims'),
    ('sampling_locations', dict(value=(1, 1, 1, 1), shape=(1, 1), heads=1, levels=1, points=2**31), 'levels x points'),
])
def test_sizes_past_int32_are_rejected_before_any_allocation(argument, inputs, expected):
    heads, levels, points = inputs['heads'], inputs['levels'], inputs['points']
    with pytest.raises(ValueError, match=f'{argument} must be .*{expected}'):
        multi_scale_deformable_attn(_one_element(*inputs['value']), torch.tensor([inputs['shape']]),
                                    torch.zeros(1, dtype=torch.int64), _one_element(1, 1, heads, levels, points, 2),
                                    _one_element(1, 1, heads, levels, points))


def test_element_offsets_past_int32_read_the_right_values():
    """value with more than 2**31 elements (allocated, never touched: only the sampled pixels get pages)."""
    height, width = 2**15, 2**15 + 1  # one level of 2**30 + 2**15 pixels: 2 images hold > 2**31 elements
    value = torch.empty(2, height * width, 1, 1, dtype=torch.bfloat16)
    assert value.numel() > 2**31
    rows = value.view(2, height, width)
    rows[0, -4:-1, -4:-1] = 2.0  # around pixel (W - 3, H - 3) of each image
    rows[1, -4:-1, -4:-1] = 3.0  # element offsets around 2**31 + 2**30
    centre = torch.tensor([(width - 2.5) / width, (height - 2.5) / height], dtype=torch.float32)
    locations = centre.expand(2, 1, 1, 1, 1, 2)
    weights = torch.full((2, 1, 1, 1, 1), 0.5)
    out = multi_scale_deformable_attn(value, torch.tensor([[height, width]]), torch.zeros(1, dtype=torch.int64),
                                      locations, weights)
    assert out.flatten().tolist() == [1.0, 1.5]


@pytest.mark.parametrize('sizes', [
    dict(bs=0), dict(queries=0), dict(points=0), dict(heads=0), dict(dims=0), dict(bs=0, queries=0)])
def test_empty_inputs_give_empty_or_zero_outputs_and_gradients(msda_inputs, sizes):
    value, shapes, starts, locations, weights = msda_inputs(**sizes)
    leaves = [t.requires_grad_() for t in (value, locations, weights)]
    out = multi_scale_deformable_attn(value, shapes, starts, locations, weights)
    bs, num_queries, heads = locations.shape[:3]
    assert out.shape == (bs, num_queries, heads * value.shape[3])
    assert not out.any()
    out.sum().backward()
    for leaf in leaves:
        assert leaf.grad.shape == leaf.shape and not leaf.grad.any()


def test_non_finite_locations_give_finite_outputs_and_gradients(msda_inputs):
    value, shapes, starts, locations, weights = msda_inputs(bs=2, queries=6, spread=0.0)
    special = torch.tensor([float('nan'), float('inf'), -float('inf'), 1e30, -1e30, 0.5], dtype=torch.float64)
    locations.view(-1)[:6 * special.numel()] = special.repeat_interleave(6)
    finite = torch.nan_to_num(locations, nan=-5.0, posinf=5.0, neginf=-5.0).clamp(-5, 5)

    def grads(fn, loc):
        leaves = [t.detach().clone().requires_grad_() for t in (value, loc, weights)]
        out = fn(leaves[0], shapes, starts, leaves[1], leaves[2])
        return (out, *torch.autograd.grad(out.square().sum(), leaves))

    for ours, ref in zip(grads(multi_scale_deformable_attn, locations),
                         grads(multi_scale_deformable_attn_pytorch, finite)):
        assert torch.isfinite(ours).all()
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    # the grid_sample reference itself propagates NaN (docs/op.md says where the two differ)
    assert multi_scale_deformable_attn_pytorch(value, shapes, starts, locations, weights).isnan().any()


def test_direct_op_rejects_what_the_python_entry_converts(msda_inputs):
    value, shapes, starts, locations, weights = msda_inputs()
    op = torch.ops.mmddetr
    with pytest.raises(ValueError, match='sampling_locations must be float64 for float64 value .*, got float32'):
        op.ms_deform_attn(value, shapes, starts, locations.float(), weights.float())
    with pytest.raises(ValueError, match='attention_weights must be float64 for float64 value .*, got float32'):
        op.ms_deform_attn(value, shapes, starts, locations, weights.float())
    with pytest.raises(ValueError, match='spatial_shapes must be an int64 tensor, got int32'):
        op.ms_deform_attn(value, shapes.int(), starts, locations, weights)
    with pytest.raises(ValueError, match='sampling_locations must be of shape'):
        op.ms_deform_attn(value, shapes, starts, locations[:1], weights[:1])
    grad_output = torch.zeros(value.shape[0], locations.shape[1], value.shape[2] * value.shape[3] + 1,
                              dtype=value.dtype)
    with pytest.raises(ValueError, match='grad_output must be float64 of shape'):
        op.ms_deform_attn_backward(value, shapes, starts, locations, weights, grad_output)
    with pytest.raises(ValueError, match='grad_output must be float64 of shape'):
        op.ms_deform_attn_backward(value, shapes, starts, locations, weights, grad_output[..., 1:].float())


def _resident_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


@pytest.mark.skipif(not os.path.exists('/proc/self/statm'), reason='reads resident memory from /proc')
def test_resident_memory_flat_over_1000_forward_backward_calls(msda_inputs):
    # each call makes ~0.9 MB of outputs and gradients: a leak of any of them would add hundreds of MB
    value, shapes, starts, locations, weights = msda_inputs(bs=2, shapes=((32, 32), (16, 16), (8, 8), (4, 4)),
                                                            heads=4, dims=16, queries=100, points=4,
                                                            dtype=torch.float32)
    leaves = [t.requires_grad_() for t in (value, locations, weights)]

    def calls(n):
        for _ in range(n):
            out = multi_scale_deformable_attn(value, shapes, starts, locations, weights)
            torch.autograd.grad(out.sum(), leaves)

    calls(100)
    before = _resident_bytes()
    calls(1000)
    growth = _resident_bytes() - before
    assert growth < 8 * 2**20, f'resident memory grew by {growth / 2**20:.1f} MB over 1000 calls'
