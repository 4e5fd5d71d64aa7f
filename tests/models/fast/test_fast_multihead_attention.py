import pytest
import torch
from mmcv.cnn.bricks.transformer import MultiheadAttention

from mmddetr.models.fast import FastMultiheadAttention, OutputOnlyMultiheadAttention


@pytest.mark.parametrize('batch_first', [True, False])
@pytest.mark.parametrize('mask', ['none', 'bool', 'float', 'padding'])
def test_fast_multihead_attention_is_mmcvs(batch_first, mask):
    """Same parameter names, outputs and float64 gradients as mmcv's MultiheadAttention, with DINO's boolean
    denoising mask, an additive mask or a key padding mask; its inner module returns no weights by default."""
    torch.manual_seed(0)
    # dropout_layer given: mmcv's default argument is a dict that its deprecated ``dropout`` rewrites process-wide
    kwargs = dict(embed_dims=32, num_heads=4, batch_first=batch_first, dropout_layer=None)
    theirs = MultiheadAttention(**kwargs).double()
    ours = FastMultiheadAttention(**kwargs).double()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    bs, nq = 2, 23
    shape = (bs, nq, 32) if batch_first else (nq, bs, 32)
    query = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    pos = torch.randn(shape, dtype=torch.float64)
    attn_mask = key_padding_mask = None
    if mask == 'bool':  # True: not attended; every query still sees itself
        attn_mask = (torch.rand(nq, nq) > 0.6) & ~torch.eye(nq, dtype=torch.bool)
    elif mask == 'float':
        attn_mask = torch.randn(nq, nq, dtype=torch.float64)
    elif mask == 'padding':
        key_padding_mask = torch.zeros(bs, nq, dtype=torch.bool)
        key_padding_mask[1, -5:] = True
    outputs, grads = [], []
    for model in (theirs, ours):
        out = model(query, query_pos=pos, key_pos=pos, attn_mask=attn_mask, key_padding_mask=key_padding_mask)
        weights = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(out)
        params = [query, *model.parameters()]
        grads.append(torch.autograd.grad((out * weights).sum(), params))
        outputs.append(out)
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-12, atol=1e-12)
    for g_ours, g_theirs in zip(*grads[::-1]):
        torch.testing.assert_close(g_ours, g_theirs, rtol=1e-10, atol=1e-12)
    assert type(ours.attn) is OutputOnlyMultiheadAttention
    x = torch.randn(5, 2, 32, dtype=torch.float64)
    assert ours.attn(x, x, x)[1] is None and theirs.attn(x, x, x)[1] is not None


def test_fast_multihead_attention_keeps_mmcvs_dropout():
    """mmcv's dropout arguments (the deprecated ``dropout`` too) give the same probabilities; in training the
    attention dropout is drawn (outputs vary between calls), in eval not."""
    kwargs = dict(embed_dims=16, num_heads=2, attn_drop=0.3, proj_drop=0.2,
                  dropout_layer=dict(type='Dropout', drop_prob=0.1))
    ours, theirs = FastMultiheadAttention(**kwargs), MultiheadAttention(**kwargs)
    assert ours.attn.dropout == theirs.attn.dropout == 0.3
    assert ours.proj_drop.p == theirs.proj_drop.p and ours.dropout_layer.p == theirs.dropout_layer.p
    # with its own dropout_layer: mmcv writes the deprecated ``dropout`` into it (else into its default argument)
    deprecated = FastMultiheadAttention(16, 2, dropout=0.4, dropout_layer=dict(type='Dropout', drop_prob=0.0))
    assert deprecated.attn.dropout == deprecated.dropout_layer.p == 0.4
    x = torch.randn(7, 3, 16)
    ours.train()
    assert not torch.equal(ours(x), ours(x))
    ours.eval()
    assert torch.equal(ours(x), ours(x))


@pytest.mark.parametrize('kwargs', [dict(), dict(kdim=8, vdim=12, bias=False, add_bias_kv=True)])
def test_fast_multihead_attention_initialises_as_mmcvs_from_a_seed(kwargs):
    """The inner module is rebuilt on the meta device and handed mmcv's tensors: the same initial weights as mmcv's
    from the same seed, and the same random numbers drawn (the generator is where mmcv's leaves it)."""
    built = []
    for cls in (MultiheadAttention, FastMultiheadAttention):
        torch.manual_seed(0)
        built.append((cls(embed_dims=16, num_heads=2, batch_first=True, **kwargs), torch.rand(3)))
    (theirs, theirs_next), (ours, ours_next) = built
    assert torch.equal(ours_next, theirs_next)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    assert all(p.device.type == 'cpu' and p.requires_grad for p in ours.parameters())
    assert (ours.attn.kdim, ours.attn.vdim, ours.attn.batch_first) == (theirs.attn.kdim, theirs.attn.vdim, False)
