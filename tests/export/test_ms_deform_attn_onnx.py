"""The ONNX translation of mmddetr::ms_deform_attn at every opset the export takes: standard operators only, the
compiled op's values in ONNX Runtime for any level sizes, batch and queries from one file, points off the maps, NaN
and infinite locations."""
import pytest
import torch

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')

from mmddetr.export.ms_deform_attn_onnx import ms_deform_attn_onnx  # noqa: E402
from mmddetr.export.onnx import SUPPORTED_OPSETS  # noqa: E402
from mmddetr.ops import multi_scale_deformable_attn_pytorch  # noqa: E402  (and registers torch.ops.mmddetr)


class _Op(torch.nn.Module):

    def forward(self, value, spatial_shapes, level_start_index, locations, weights):
        return torch.ops.mmddetr.ms_deform_attn(value, spatial_shapes, level_start_index, locations, weights)


def make_inputs(bs=2, shapes=((6, 4), (3, 2), (1, 1)), queries=5, spread=0.2, seed=0):
    """float32 op inputs: 2 heads of 8 channels, 3 points; locations uniform in [-spread, 1 + spread]."""
    gen = torch.Generator().manual_seed(seed)
    spatial_shapes = torch.tensor(shapes)
    sizes = spatial_shapes.prod(1)
    level_start_index = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    value = torch.randn(bs, int(sizes.sum()), 2, 8, generator=gen)
    locations = torch.rand(bs, queries, 2, len(shapes), 3, 2, generator=gen) * (1 + 2 * spread) - spread
    weights = torch.rand(bs, queries, 2, len(shapes), 3, generator=gen)
    return value, spatial_shapes, level_start_index, locations, weights


@pytest.fixture(scope='module', params=SUPPORTED_OPSETS)
def op_session(request, tmp_path_factory):
    """ONNX Runtime session of the op alone, exported at each opset the export takes (the translation is written in
    opset 18; the exporter converts it to later ones) with dynamic batch, keys and queries (3 levels)."""
    path = str(tmp_path_factory.mktemp('onnx') / 'msda.onnx')
    keys, batch, queries = torch.export.Dim('keys'), torch.export.Dim('batch'), torch.export.Dim('queries')
    program = torch.onnx.export(
        _Op(), make_inputs(), dynamo=True, opset_version=request.param,
        dynamic_shapes=({0: batch, 1: keys}, None, None, {0: batch, 1: queries}, {0: batch, 1: queries}),
        custom_translation_table={torch.ops.mmddetr.ms_deform_attn.default: ms_deform_attn_onnx})
    program.save(path)
    assert [(o.domain, o.version) for o in program.model_proto.opset_import] == [('', request.param)]
    return path, ort.InferenceSession(path, providers=['CPUExecutionProvider'])


def _run(session, inputs):
    feed = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs)}
    return torch.from_numpy(session.run(None, feed)[0])


def test_translation_uses_standard_operators_without_grid_sample(op_session):
    path, _ = op_session
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    nodes = [(node.domain, node.op_type) for node in model.graph.node]
    for function in model.functions:
        nodes += [(node.domain, node.op_type) for node in function.node]
    assert all(domain in ('', 'ai.onnx') for domain, _ in nodes), set(nodes)
    ops = [op for _, op in nodes]
    assert 'GridSample' not in ops and 'Gather' in ops and ops.count('MatMul') == 1


@pytest.mark.parametrize('case', [
    dict(),
    dict(bs=1, queries=9, seed=1, spread=1.0),  # most points off the maps
    dict(bs=3, shapes=((7, 5), (4, 3), (2, 2)), queries=4, seed=2),  # other level sizes, same file
    dict(shapes=((1, 9), (5, 1), (2, 3)), queries=6, seed=3),
])
def test_onnx_runtime_matches_the_op(op_session, case):
    _, session = op_session
    inputs = make_inputs(**case)
    torch.testing.assert_close(_run(session, inputs), torch.ops.mmddetr.ms_deform_attn(*inputs), atol=1e-5,
                               rtol=1e-5)


def test_nan_infinite_and_huge_locations_read_zeros(op_session):
    _, session = op_session
    value, shapes, starts, locations, weights = make_inputs(seed=4)
    locations[0, 0, 0, 0, 0] = float('nan')
    locations[0, 1, 0, 1, 0, 0] = float('inf')
    locations[1, 1, 1, 1, 1, 1] = -float('inf')
    locations[1, 2, 0, 0, 2] = 1e30
    locations[1, 3, 1, 2, 1] = -1e30
    inputs = (value, shapes, starts, locations, weights)
    out = _run(session, inputs)
    assert torch.isfinite(out).all() and multi_scale_deformable_attn_pytorch(*inputs).isnan().any()
    torch.testing.assert_close(out, torch.ops.mmddetr.ms_deform_attn(*inputs), atol=1e-5, rtol=1e-5)
