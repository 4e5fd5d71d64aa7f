"""Encoder reference points, decoder refinement, the plain layers against mmdet's, and swapping sub-layers through
config."""
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


def test_plain_layers_build_mmcvs_ffn_and_self_attention_and_torchs_dropout():
    """Without a type in the config: our attention with torch's dropout, mmcv's FFN and MultiheadAttention (their
    dropouts torch's and mmcv's)."""
    from mmcv.cnn.bricks.drop import Dropout as MmcvDropout
    from mmcv.cnn.bricks.transformer import FFN, MultiheadAttention

    from mmddetr.models import MultiScaleDeformableAttention
    encoder = DeformableDetrTransformerEncoder(num_layers=1, layer_cfg=_layer_cfg())
    decoder = DeformableDetrTransformerDecoder(num_layers=1, layer_cfg=_layer_cfg(decoder=True))
    layers = (encoder.layers[0], decoder.layers[0])
    assert [type(layer.self_attn) for layer in layers] == [MultiScaleDeformableAttention, MultiheadAttention]
    assert type(decoder.layers[0].cross_attn) is MultiScaleDeformableAttention
    assert [type(layer.ffn) for layer in layers] == [FFN, FFN]
    dropouts = {type(m) for layer in layers for m in layer.modules() if isinstance(m, nn.Dropout)}
    assert dropouts == {nn.Dropout, MmcvDropout}  # mmcv's MultiheadAttention's dropout_layer


def _same_weights(ours, theirs, seed=0):
    """``theirs`` with ``ours``'s weights, every one drawn at random (offsets and attention logits start at zero)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in ours.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    return ours.eval(), theirs.eval()


def test_plain_layers_equal_mmdets():
    """Our plain encoder and decoder layers against mmdet 3.3.0's (mmcv's attention) with the same weights."""
    from mmdet.models.layers.transformer.deformable_detr_layers import (
        DeformableDetrTransformerDecoderLayer as MmdetDecoderLayer,
        DeformableDetrTransformerEncoderLayer as MmdetEncoderLayer)

    from mmddetr.models import DeformableDetrTransformerDecoderLayer, DeformableDetrTransformerEncoderLayer
    cfg = _layer_cfg()
    for key in ('self_attn_cfg', 'cross_attn_cfg'):
        cfg.get(key, {})['batch_first'] = True  # mmdet's layers take it from the config
    ours, theirs = _same_weights(DeformableDetrTransformerEncoderLayer(**cfg), MmdetEncoderLayer(**cfg))
    x = torch.randn(2, 30, 32)
    inputs = dict(query=x, query_pos=torch.randn_like(x), key_padding_mask=torch.zeros(2, 30, dtype=torch.bool),
                  reference_points=torch.rand(2, 30, 2, 2), spatial_shapes=SHAPES, level_start_index=START)
    inputs['key_padding_mask'][1, 20:] = True
    torch.testing.assert_close(ours(**inputs), theirs(**inputs), atol=1e-5, rtol=1e-5)

    cfg = _layer_cfg(decoder=True)
    for key in ('self_attn_cfg', 'cross_attn_cfg'):
        cfg.get(key, {})['batch_first'] = True  # mmdet's layers take it from the config
    ours, theirs = _same_weights(DeformableDetrTransformerDecoderLayer(**cfg), MmdetDecoderLayer(**cfg))
    inputs = _decoder_inputs(refine_dims=4)
    inputs['reference_points'] = inputs['reference_points'][:, :, None].expand(2, 5, 2, 4)
    del inputs['valid_ratios']
    torch.testing.assert_close(ours(**inputs), theirs(**inputs), atol=1e-5, rtol=1e-5)


def test_attention_and_ffn_are_swappable_through_config():
    """A subclass of our attention, mmcv's attention (the same values) and another FFN, each named by ``type``."""
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
    inputs = (x, torch.randn_like(x), None, SHAPES, START, torch.ones(2, 2, 2))
    cfg['self_attn_cfg']['type'] = MmcvMSDA
    ours, mmcvs = _same_weights(encoder, DeformableDetrTransformerEncoder(num_layers=1, layer_cfg=cfg))
    assert type(mmcvs.layers[0].self_attn) is MmcvMSDA
    torch.testing.assert_close(ours(*inputs), mmcvs(*inputs), atol=1e-5, rtol=1e-5)


def test_decoder_attentions_and_ffn_are_swappable_through_config():
    """The decoder layer builds its self-attention, cross-attention and FFN from ``type``: here subclasses of mmcv's
    MultiheadAttention and of our attention, and mmcv's FFN with GELU, each of which the forward pass runs."""
    from mmcv.cnn.bricks.transformer import FFN, MultiheadAttention

    from mmddetr.models import MultiScaleDeformableAttention

    class SubclassedSelfAttention(MultiheadAttention):
        pass

    class SubclassedAttention(MultiScaleDeformableAttention):
        pass

    cfg = _layer_cfg(decoder=True)
    cfg['self_attn_cfg']['type'] = SubclassedSelfAttention
    cfg['cross_attn_cfg']['type'] = SubclassedAttention
    cfg['ffn_cfg'] = dict(type='FFN', embed_dims=32, feedforward_channels=16, act_cfg=dict(type='GELU'))
    decoder = DeformableDetrTransformerDecoder(num_layers=2, layer_cfg=cfg)
    calls = []
    for layer in decoder.layers:
        assert type(layer.self_attn) is SubclassedSelfAttention and type(layer.cross_attn) is SubclassedAttention
        assert type(layer.ffn) is FFN and isinstance(layer.ffn.layers[0][1], nn.GELU)
        for sub in (layer.self_attn, layer.cross_attn, layer.ffn):
            sub.register_forward_hook(lambda module, args, out: calls.append(type(module)))
    hidden, _ = decoder(**_decoder_inputs())
    assert hidden.shape == (2, 2, 5, 32)
    assert calls == [SubclassedSelfAttention, SubclassedAttention, FFN] * 2


@pytest.mark.parametrize('stack', [DeformableDetrTransformerEncoder, DeformableDetrTransformerDecoder])
def test_a_stack_of_no_layers_is_refused_by_name(stack):
    with pytest.raises(ValueError, match='num_layers must be at least 1, but got 0'):
        stack(num_layers=0, layer_cfg=dict())
