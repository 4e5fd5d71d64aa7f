"""Our MultiScaleDeformableAttention as a drop-in for mmcv's."""
import math

import pytest
import torch
from mmcv.ops import MultiScaleDeformableAttention as MMCVAttention
from mmdet.registry import MODELS as MMDET_MODELS

from mmddetr.models import MultiScaleDeformableAttention

SHAPES = torch.tensor([[8, 6], [4, 3], [2, 2], [1, 1]])
STARTS = torch.cat([SHAPES.new_zeros(1), SHAPES.prod(1).cumsum(0)[:-1]])
NUM_VALUE = int(SHAPES.prod(1).sum())


def _pair(**kwargs):
    torch.manual_seed(0)
    ours = MultiScaleDeformableAttention(**kwargs)
    for param in ours.parameters():  # leave the init so that offsets and weights matter
        torch.nn.init.normal_(param, std=0.3)
    theirs = MMCVAttention(**kwargs)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    return ours.eval(), theirs.eval()


@pytest.mark.parametrize('ref_dims', [2, 4])
@pytest.mark.parametrize('batch_first', [False, True])
def test_equals_mmcv_module_with_same_weights(ref_dims, batch_first):
    ours, theirs = _pair(embed_dims=64, num_heads=4, num_levels=4, num_points=3, batch_first=batch_first)
    bs, num_query = 2, 11
    query, query_pos = torch.randn(bs, num_query, 64), torch.randn(bs, num_query, 64)
    value = torch.randn(bs, NUM_VALUE, 64)
    if not batch_first:
        query, query_pos, value = (t.transpose(0, 1) for t in (query, query_pos, value))
    padding = torch.zeros(bs, NUM_VALUE, dtype=torch.bool)
    padding[1, 40:] = True
    reference_points = torch.rand(bs, num_query, 4, ref_dims)
    kwargs = dict(value=value, query_pos=query_pos, key_padding_mask=padding, reference_points=reference_points,
                  spatial_shapes=SHAPES, level_start_index=STARTS)
    torch.testing.assert_close(ours(query, **kwargs), theirs(query, **kwargs), rtol=1e-5, atol=1e-5)


def test_same_parameters_and_init_as_mmcv():
    torch.manual_seed(0)
    ours = MultiScaleDeformableAttention(embed_dims=32, num_heads=8, num_levels=3, num_points=4)
    theirs = MMCVAttention(embed_dims=32, num_heads=8, num_levels=3, num_points=4)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    for name in ('sampling_offsets.weight', 'sampling_offsets.bias', 'attention_weights.weight',
                 'attention_weights.bias', 'value_proj.bias', 'output_proj.bias'):
        torch.testing.assert_close(ours.state_dict()[name], theirs.state_dict()[name])


def test_init_weights_offset_grid():
    attn = MultiScaleDeformableAttention(embed_dims=64, num_heads=8, num_levels=2, num_points=3)
    attn.sampling_offsets.weight.data.normal_()
    attn.init_weights()
    bias = attn.sampling_offsets.bias.view(8, 2, 3, 2)
    assert attn.sampling_offsets.weight.abs().sum() == 0
    assert attn.attention_weights.weight.abs().sum() == 0 and attn.attention_weights.bias.abs().sum() == 0
    for head in range(8):
        direction = torch.tensor([math.cos(2 * math.pi * head / 8), math.sin(2 * math.pi * head / 8)])
        direction = direction / direction.abs().max()
        for point in range(3):
            for level in range(2):
                torch.testing.assert_close(bias[head, level, point], direction * (point + 1))


def test_float64_gradcheck_through_module():
    attn = MultiScaleDeformableAttention(embed_dims=8, num_heads=2, num_levels=4, num_points=2, dropout=0.0,
                                         batch_first=True).double()
    query = torch.randn(1, 3, 8, dtype=torch.float64, requires_grad=True)
    value = torch.randn(1, NUM_VALUE, 8, dtype=torch.float64, requires_grad=True)
    reference_points = torch.rand(1, 3, 4, 2, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda q, v: attn(q, value=v, reference_points=reference_points, spatial_shapes=SHAPES,
                          level_start_index=STARTS), (query, value))


def test_builds_from_other_scopes_and_accepts_mmcv_residual_alias():
    attn = MMDET_MODELS.build(dict(type='mmddetr.MultiScaleDeformableAttention', embed_dims=32, num_levels=1,
                                   batch_first=True))
    assert isinstance(attn, MultiScaleDeformableAttention)
    shapes, starts = torch.tensor([[3, 4]]), torch.tensor([0])
    query = torch.randn(1, 5, 32)
    kwargs = dict(value=torch.randn(1, 12, 32), reference_points=torch.rand(1, 5, 1, 2), spatial_shapes=shapes,
                  level_start_index=starts)
    attn.eval()
    residual = torch.randn(1, 5, 32)
    with pytest.warns(DeprecationWarning):
        old = attn(query, residual=residual, **kwargs)
    torch.testing.assert_close(old, attn(query, identity=residual, **kwargs))


def test_bad_arguments():
    with pytest.raises(ValueError, match='embed_dims'):
        MultiScaleDeformableAttention(embed_dims=30, num_heads=8)
    attn = MultiScaleDeformableAttention(embed_dims=16, num_heads=2, num_levels=1, batch_first=True)
    with pytest.raises(ValueError, match='reference_points'):
        attn(torch.randn(1, 5, 16), reference_points=torch.rand(1, 5, 1, 3), spatial_shapes=torch.tensor([[1, 5]]),
             level_start_index=torch.tensor([0]))
