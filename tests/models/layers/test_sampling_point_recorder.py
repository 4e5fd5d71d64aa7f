"""SamplingPointRecorder records where a decoder layer's cross-attention sampled: the locations and weights its op
call received, of the layer chosen; its hook is gone after the ``with`` block; other attention is a TypeError."""
import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from toy_configs import MAIN_TOY


class OpCalls(TorchDispatchMode):
    """The arguments of every ``mmddetr::ms_deform_attn`` call, as the op's dispatch sees them."""

    def __init__(self):
        super().__init__()
        self.args = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == 'mmddetr' and 'ms_deform_attn' in func.name():
            self.args.append(args)
        return func(*args, **(kwargs or {}))


def _holder(attn):
    """A module with ``layers[0].cross_attn = attn``, the shape of decoder the recorder reads."""
    layer = nn.Module()
    layer.cross_attn = attn
    decoder = nn.Module()
    decoder.layers = nn.ModuleList([layer])
    return decoder


def test_sampling_points_match_the_attention_forward():
    from mmddetr.models import MultiScaleDeformableAttention
    from mmddetr.ops import multi_scale_deformable_attn_pytorch

    attn = MultiScaleDeformableAttention(embed_dims=16, num_heads=2, num_levels=2, num_points=3, dropout=0.0,
                                         batch_first=True)
    shapes = torch.tensor([[4, 5], [2, 3]])
    start = torch.tensor([0, 20])
    query, value = torch.randn(1, 7, 16), torch.randn(1, 26, 16)
    ref = torch.rand(1, 7, 2, 2)
    out = attn(query, value=value, reference_points=ref, spatial_shapes=shapes, level_start_index=start)
    locations, weights = attn.sampling_points(query, ref, shapes)
    torch.testing.assert_close(weights.sum((-1, -2)), torch.ones(1, 7, 2))
    v = attn.value_proj(value).view(1, 26, 2, 8)
    expected = attn.output_proj(multi_scale_deformable_attn_pytorch(v, shapes, start, locations, weights)) + query
    torch.testing.assert_close(out, expected)


def test_recorder_records_the_op_inputs_of_the_chosen_decoder_layer(build_detector, det_batch, perturb):
    """On the toy detector (refine + two-stage, fast layers: 1 encoder and 3 decoder layers), a batch of two images:
    the last layer's and the first layer's recorders hold what their op calls received."""
    from mmddetr.models.layers import MultiScaleDeformableAttention, SamplingPointRecorder

    model = perturb(build_detector(MAIN_TOY, encoder=dict(num_layers=1))).eval()
    assert isinstance(model.decoder.layers[-1].cross_attn, MultiScaleDeformableAttention)
    inputs, samples = det_batch(num_classes=5)
    with SamplingPointRecorder(model.decoder) as last, SamplingPointRecorder(model.decoder, layer=0) as first:
        with OpCalls() as calls, torch.no_grad():
            results = model.predict(inputs, samples)
    assert len(calls.args) == 4  # the encoder layer's call, then the decoder layers'
    for recorder, call in ((last, calls.args[-1]), (first, calls.args[1])):
        _, shapes, _, locations, weights = call[:5]
        assert locations.shape[:2] == (2, 100) and torch.equal(recorder.points.spatial_shapes, shapes)
        torch.testing.assert_close(recorder.points.locations, locations, atol=1e-6, rtol=0)
        torch.testing.assert_close(recorder.points.weights, weights, atol=1e-6, rtol=0)
    assert not torch.equal(first.points.locations, last.points.locations)
    # the head's queries index the recorded points: each detection's query is one of the 100
    assert all(0 <= int(r.pred_instances.queries.min()) and int(r.pred_instances.queries.max()) < 100 for r in results)


def test_recorder_reads_positional_and_sequence_first_inputs_and_removes_its_hook():
    from mmddetr.models.layers import MultiScaleDeformableAttention, SamplingPointRecorder

    attn = MultiScaleDeformableAttention(embed_dims=16, num_heads=2, num_levels=2, num_points=3, dropout=0.0)
    shapes, start = torch.tensor([[4, 5], [2, 3]]), torch.tensor([0, 20])
    query, pos, value = torch.randn(7, 2, 16), torch.randn(7, 2, 16), torch.randn(26, 2, 16)  # (n, bs, C)
    ref = torch.rand(2, 7, 2, 2)
    with SamplingPointRecorder(_holder(attn)) as recorder:
        assert recorder.points is None
        attn(query, None, value, None, pos, None, ref, shapes, start)  # all positional
    locations, weights = attn.sampling_points((query + pos).permute(1, 0, 2), ref, shapes)
    assert torch.equal(recorder.points.locations, locations) and torch.equal(recorder.points.weights, weights)
    assert not attn._forward_hooks
    recorded = recorder.points
    attn(query, value=value, query_pos=pos, reference_points=ref, spatial_shapes=shapes, level_start_index=start)
    assert recorder.points is recorded


def test_recorder_names_a_cross_attention_that_is_not_ours():
    from mmcv.ops import MultiScaleDeformableAttention as MmcvMultiScaleDeformableAttention

    from mmddetr.models.layers import SamplingPointRecorder
    with pytest.raises(TypeError, match=r'decoder.layers\[-1\].cross_attn: expected '
                                        r'mmddetr.MultiScaleDeformableAttention .* got mmcv\.'):
        SamplingPointRecorder(_holder(MmcvMultiScaleDeformableAttention(embed_dims=16, num_heads=2)))
