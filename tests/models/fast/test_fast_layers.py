"""The fast encoder and decoder layers and attention against the plain ones with the same weights."""
import pytest
import torch
from torch import nn

from mmddetr.models import (DeformableDetrTransformerDecoderLayer, DeformableDetrTransformerEncoderLayer,
                            MultiScaleDeformableAttention)
from mmddetr.models.fast import (FastDeformableDetrTransformerDecoderLayer, FastDeformableDetrTransformerEncoderLayer,
                                 FastDropout, FastFFN, FastMultiheadAttention, FastMultiScaleDeformableAttention)

SHAPES = torch.tensor([[4, 6], [2, 3]])
START = torch.tensor([0, 24])


def _cfg(decoder=False, dims=32, feedforward_channels=64):
    attn = dict(embed_dims=dims, num_heads=4, num_levels=2, num_points=2, dropout=0.0)
    ffn = dict(embed_dims=dims, feedforward_channels=feedforward_channels, ffn_drop=0.0)
    if decoder:
        return dict(self_attn_cfg=dict(embed_dims=dims, num_heads=4, attn_drop=0.0, dropout_layer=None),
                    cross_attn_cfg=attn, ffn_cfg=ffn)
    return dict(self_attn_cfg=attn, ffn_cfg=ffn)


def _pair(fast, plain):
    """(fast, plain), the same random weights in both (offsets and attention logits start at zero); same names."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in fast.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    assert list(fast.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(fast.state_dict(), strict=True)
    return fast, plain


def _encoder_inputs():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 30, 32, generator=gen)
    mask = torch.zeros(2, 30, dtype=torch.bool)
    mask[1, 20:] = True
    return dict(query=x, query_pos=torch.randn(2, 30, 32, generator=gen), key_padding_mask=mask,
                reference_points=torch.rand(2, 30, 2, 2, generator=gen), spatial_shapes=SHAPES,
                level_start_index=START)


def test_fast_encoder_layer_is_the_plain_one_in_chunks_without_autograd():
    """Without autograd the FFN runs on chunks of 7 queries (the last one short), with autograd on all 30 at once;
    both give the plain layer's values, and the fast layer's sub-layers are the fast ones."""
    fast, plain = _pair(FastDeformableDetrTransformerEncoderLayer(**_cfg(), inference_chunk=7),
                        DeformableDetrTransformerEncoderLayer(**_cfg()))
    assert type(fast.self_attn) is FastMultiScaleDeformableAttention and type(fast.ffn) is FastFFN
    inputs = _encoder_inputs()
    calls = []
    fast.ffn.register_forward_hook(lambda _, args, out: calls.append(args[0].shape[1]))
    expected = plain(**inputs)
    torch.testing.assert_close(fast(**inputs), expected, atol=1e-5, rtol=1e-5)
    assert calls == [30]
    calls.clear()
    with torch.no_grad():
        chunked = fast(**inputs)
    assert calls == [7, 7, 7, 7, 2]
    torch.testing.assert_close(chunked, expected, atol=1e-5, rtol=1e-5)


def test_fast_encoder_layer_traces_as_the_plain_one_under_torch_compile():
    """torch.compile traces one attention over all queries (a loop over chunks would fix the number of queries)."""
    fast, plain = _pair(FastDeformableDetrTransformerEncoderLayer(**_cfg(), inference_chunk=7),
                        DeformableDetrTransformerEncoderLayer(**_cfg()))
    graphs = []

    def backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    inputs = _encoder_inputs()
    with torch.no_grad():
        compiled = torch.compile(fast, backend=backend)(**inputs)
        torch.testing.assert_close(compiled, plain(**inputs), atol=1e-5, rtol=1e-5)
    op = torch.ops.mmddetr.ms_deform_attn
    assert sum(node.target in (op, op.default) for graph in graphs for node in graph.graph.nodes) == 1


@pytest.mark.parametrize('feedforward_channels, chunk', [(1024, 4096), (2048, 2048), (5000, 838)])
def test_fast_encoder_layer_chunk_keeps_the_ffn_hidden_layer_at_16_mb(feedforward_channels, chunk):
    layer = FastDeformableDetrTransformerEncoderLayer(**_cfg(feedforward_channels=feedforward_channels))
    assert layer.inference_chunk == chunk and chunk * feedforward_channels * 4 <= 16 * 2**20
    assert FastDeformableDetrTransformerEncoderLayer(**_cfg(), inference_chunk=100).inference_chunk == 100
    with pytest.raises(ValueError, match='inference_chunk must be at least 1, but got 0'):
        FastDeformableDetrTransformerEncoderLayer(**_cfg(), inference_chunk=0)


def test_fast_encoder_layer_needs_our_attention():
    from mmcv.ops import MultiScaleDeformableAttention as MmcvMSDA
    cfg = _cfg()
    cfg['self_attn_cfg']['type'] = MmcvMSDA
    with pytest.raises(TypeError, match='self_attn_cfg: the fast encoder layer needs mmddetr\'s MultiScaleDeformable'
                                        'Attention .* got MultiScaleDeformableAttention; the plain'):
        FastDeformableDetrTransformerEncoderLayer(**cfg)
    assert type(DeformableDetrTransformerEncoderLayer(**cfg).self_attn) is MmcvMSDA


def test_a_type_in_the_config_wins_over_the_fast_layers_defaults():
    from mmcv.cnn.bricks.transformer import FFN
    cfg = _cfg(decoder=True)
    cfg['ffn_cfg']['type'] = 'FFN'
    cfg['cross_attn_cfg']['type'] = 'mmddetr.MultiScaleDeformableAttention'
    layer = FastDeformableDetrTransformerDecoderLayer(**cfg)
    assert (type(layer.self_attn), type(layer.cross_attn), type(layer.ffn)) == (
        FastMultiheadAttention, MultiScaleDeformableAttention, FFN)


def test_fast_decoder_layer_is_the_plain_one():
    fast, plain = _pair(FastDeformableDetrTransformerDecoderLayer(**_cfg(decoder=True)),
                        DeformableDetrTransformerDecoderLayer(**_cfg(decoder=True)))
    assert (type(fast.self_attn), type(fast.cross_attn), type(fast.ffn)) == (
        FastMultiheadAttention, FastMultiScaleDeformableAttention, FastFFN)
    gen = torch.Generator().manual_seed(1)
    inputs = dict(query=torch.randn(2, 5, 32, generator=gen), value=torch.randn(2, 30, 32, generator=gen),
                  query_pos=torch.randn(2, 5, 32, generator=gen), key_padding_mask=None,
                  self_attn_mask=torch.rand(5, 5, generator=gen) > 0.7, spatial_shapes=SHAPES,
                  level_start_index=START, reference_points=torch.rand(2, 5, 2, 4, generator=gen))
    inputs['self_attn_mask'].fill_diagonal_(False)
    for grad in (True, False):
        with torch.set_grad_enabled(grad):
            torch.testing.assert_close(fast(**inputs), plain(**inputs), atol=1e-5, rtol=1e-5)


def test_fast_attention_is_ours_with_fast_dropout():
    """Same parameters and values as our plain attention; its output dropout draws counter-based masks at the same
    rate."""
    kwargs = dict(embed_dims=32, num_heads=4, num_levels=2, num_points=2, dropout=0.25, batch_first=True)
    fast, plain = _pair(FastMultiScaleDeformableAttention(**kwargs), MultiScaleDeformableAttention(**kwargs))
    assert type(fast.dropout) is FastDropout and type(plain.dropout) is nn.Dropout and fast.dropout.p == 0.25
    inputs = dict(value=torch.randn(2, 30, 32), reference_points=torch.rand(2, 9, 2, 2), spatial_shapes=SHAPES,
                  level_start_index=START)
    query = torch.randn(2, 9, 32)
    fast.eval(), plain.eval()
    torch.testing.assert_close(fast(query, **inputs), plain(query, **inputs), atol=1e-6, rtol=1e-6)
    fast.train()
    identity = torch.zeros(2, 9, 32)
    fast.dropout.p = 0.0
    undropped = fast(query, identity=identity, **inputs)
    fast.dropout.p = 0.25
    dropped = fast(query, identity=identity, **inputs)
    kept = dropped != 0
    assert abs(kept.float().mean().item() - 0.75) < 0.05
    torch.testing.assert_close(dropped[kept], undropped[kept] / 0.75)
