"""Encoder reference points, decoder refinement, and swapping sub-layers through config."""
import pytest
import torch
from torch import nn

from mmddetr.models import DeformableDetrTransformerDecoder, DeformableDetrTransformerEncoder

SHAPES = torch.tensor([[4, 6], [2, 3]])
START = torch.tensor([0, 24])


def _layer_cfg(dims=32, levels=2, decoder=False):
    attn = dict(embed_dims=dims, num_heads=4, num_levels=levels, num_points=2, dropout=0.0)
    ffn = dict(embed_dims=dims, feedforward_channels=64, ffn_drop=0.0)
    if decoder:
        return dict(self_attn_cfg=dict(embed_dims=dims, num_heads=4), cross_attn_cfg=attn, ffn_cfg=ffn)
    return dict(self_attn_cfg=attn, ffn_cfg=ffn)


def test_encoder_reference_points_are_valid_pixel_centres():
    valid_ratios = torch.tensor([[[0.5, 0.75], [0.5, 1.0]], [[1.0, 1.0], [1.0, 1.0]]])  # (bs, levels, (w, h))
    ref = DeformableDetrTransformerEncoder.get_encoder_reference_points(SHAPES, valid_ratios, 30)
    assert ref.shape == (2, 30, 2, 2)
    for b in range(2):
        for lvl, (H, W) in enumerate(SHAPES.tolist()):
            for i in range(H):
                for j in range(W):
                    key = START[lvl] + i * W + j
                    x = (j + 0.5) / (valid_ratios[b, lvl, 0] * W)
                    y = (i + 0.5) / (valid_ratios[b, lvl, 1] * H)
                    expected = torch.stack([x * valid_ratios[b, :, 0], y * valid_ratios[b, :, 1]], -1)
                    torch.testing.assert_close(ref[b, key], expected)


def test_encoder_runs_any_embed_dims():
    encoder = DeformableDetrTransformerEncoder(num_layers=2, layer_cfg=_layer_cfg(dims=48))
    x = torch.randn(2, 30, 48)
    out = encoder(x, torch.randn_like(x), None, SHAPES, START, torch.ones(2, 2, 2))
    assert out.shape == x.shape and encoder.embed_dims == 48


def test_encoder_inference_in_chunks_equals_the_whole_pass():
    """Eval without autograd runs each layer chunk by chunk of queries (7 here, the last one short); padding too."""
    torch.manual_seed(0)
    cfg = _layer_cfg()
    cfg['inference_chunk'] = 7
    encoder = DeformableDetrTransformerEncoder(num_layers=2, layer_cfg=cfg).eval()
    for p in encoder.parameters():  # offsets and attention logits start at zero; make every path count
        nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 30, 32)
    pos, mask = torch.randn_like(x), torch.zeros(2, 30, dtype=torch.bool)
    mask[1, 20:] = True
    valid_ratios = torch.tensor([[[1.0, 1.0]] * 2, [[0.5, 1.0]] * 2])
    whole = encoder(x, pos, mask, SHAPES, START, valid_ratios)  # autograd on: one pass
    calls = []
    encoder.layers[0].ffn.register_forward_hook(lambda _, args, out: calls.append(args[0].shape[1]))
    with torch.no_grad():
        chunked = encoder(x, pos, mask, SHAPES, START, valid_ratios)
    assert calls == [7, 7, 7, 7, 2]
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)


def _decoder_inputs(refine_dims=2):
    gen = torch.Generator().manual_seed(0)
    return dict(query=torch.randn(2, 5, 32, generator=gen), query_pos=torch.randn(2, 5, 32, generator=gen),
                value=torch.randn(2, 30, 32, generator=gen), key_padding_mask=None,
                reference_points=torch.rand(2, 5, refine_dims, generator=gen), spatial_shapes=SHAPES,
                level_start_index=START, valid_ratios=torch.ones(2, 2, 2))


def test_refinement_updates_and_detaches_references():
    decoder = DeformableDetrTransformerDecoder(num_layers=3, layer_cfg=_layer_cfg(decoder=True))
    reg_branches = nn.ModuleList([nn.Linear(32, 4) for _ in range(3)])
    inputs = _decoder_inputs()
    hidden, refs = decoder(**inputs, reg_branches=reg_branches)
    assert hidden.shape == (3, 2, 5, 32) and refs.shape == (3, 2, 5, 4)
    assert not refs.requires_grad
    delta = reg_branches[0](hidden[0])
    expected_centre = (delta[..., :2] + torch.logit(inputs['reference_points'], eps=1e-5)).sigmoid()
    torch.testing.assert_close(refs[0][..., :2], expected_centre.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(refs[0][..., 2:], delta[..., 2:].sigmoid().detach())
    hidden[2].sum().backward()  # layer 2 sees branch 0 only through a detached reference
    assert reg_branches[0].weight.grad is None and reg_branches[1].weight.grad is None


def test_without_refinement_references_stay():
    decoder = DeformableDetrTransformerDecoder(num_layers=2, layer_cfg=_layer_cfg(decoder=True))
    inputs = _decoder_inputs(refine_dims=4)
    _, refs = decoder(**inputs)
    assert torch.equal(refs[1], inputs['reference_points'])


def test_attention_and_ffn_are_swappable_through_config():
    from mmcv.cnn.bricks.transformer import FFN
    from mmcv.ops import MultiScaleDeformableAttention as MmcvMSDA

    from mmddetr.models import MultiScaleDeformableAttention

    class SubclassedAttention(MultiScaleDeformableAttention):
        pass

    cfg = _layer_cfg()
    cfg['self_attn_cfg']['type'] = SubclassedAttention
    cfg['ffn_cfg'] = dict(type='FFN', embed_dims=32, feedforward_channels=16, act_cfg=dict(type='GELU'))
    encoder = DeformableDetrTransformerEncoder(num_layers=1, layer_cfg=cfg)
    assert type(encoder.layers[0].self_attn) is SubclassedAttention and type(encoder.layers[0].ffn) is FFN
    assert isinstance(encoder.layers[0].ffn.layers[0][1], nn.GELU)
    x = torch.randn(2, 30, 32)
    assert encoder(x, torch.zeros_like(x), None, SHAPES, START, torch.ones(2, 2, 2)).shape == x.shape

    cfg['self_attn_cfg']['type'] = MmcvMSDA  # no project_value / attend: said at construction
    with pytest.raises(TypeError, match='self_attn_cfg: .* project_value and attend.* got MultiScaleDeformable'):
        DeformableDetrTransformerEncoder(num_layers=1, layer_cfg=cfg)
