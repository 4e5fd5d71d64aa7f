import pytest
import torch
from mmcv.cnn.bricks.transformer import FFN

from mmddetr.models.fast import FastDropout, FastFFN, GradAwareReLU


@pytest.mark.parametrize('kwargs', [
    dict(ffn_drop=0.2, dropout_layer=dict(type='Dropout', drop_prob=0.3)),
    dict(num_fcs=3, act_cfg=dict(type='GELU'), add_identity=False),
    dict(layer_scale_init_value=0.5),
])
def test_fast_ffn_is_mmcv_ffn(kwargs):
    """Same parameter names, initialisation from a seed, dropout probabilities and maths as mmcv's FFN (eval: no
    dropout drawn)."""
    torch.manual_seed(0)
    ours = FastFFN(embed_dims=16, feedforward_channels=32, **kwargs)
    torch.manual_seed(0)
    theirs = FFN(embed_dims=16, feedforward_channels=32, **kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    drops = sorted(m.p for m in ours.modules() if isinstance(m, torch.nn.Dropout))
    assert drops == sorted(m.p for m in theirs.modules() if isinstance(m, torch.nn.Dropout))
    assert all(type(m) is FastDropout for m in ours.layers.modules() if isinstance(m, torch.nn.Dropout))
    x = torch.randn(2, 5, 16, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    identity = torch.randn(2, 5, 16)
    ours.eval(), theirs.eval()
    y, y_ref = ours(x, identity), theirs(x_ref, identity)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    y.square().sum().backward()
    y_ref.square().sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)


def test_fast_ffn_relu_and_errors():
    assert [type(m) for m in FastFFN(8, 16).modules() if isinstance(m, torch.nn.ReLU)] == [GradAwareReLU]
    assert [m.inplace for m in FastFFN(8, 16, act_cfg=dict(type='ReLU')).modules() if isinstance(m, GradAwareReLU)] \
        == [False]
    with pytest.raises(AssertionError, match='num_fcs should be no less than 2. got 1'):  # mmcv's check
        FastFFN(8, 16, num_fcs=1)


def test_fast_ffn_dropout_in_training_keeps_its_rate():
    ffn = FastFFN(embed_dims=64, feedforward_channels=256, ffn_drop=0.25, add_identity=False).train()
    hidden = ffn.layers[0][:2](torch.randn(64, 64))
    dropped = ffn.layers[0][2](hidden)
    kept = dropped != 0
    assert abs(kept[hidden != 0].float().mean().item() - 0.75) < 0.03
    torch.testing.assert_close(dropped[kept], hidden[kept] / 0.75)


def test_grad_aware_relu_is_in_place_only_without_autograd():
    relu = GradAwareReLU(inplace=True)
    view = (torch.randn(4, 6) * 1).view(2, 12)
    with torch.no_grad():
        assert relu(view).data_ptr() == view.data_ptr() and (view >= 0).all()
    leaf = torch.randn(4, 6, requires_grad=True)
    y = (leaf * 1).view(2, 12)
    out = relu(y)
    assert out.data_ptr() != y.data_ptr() and out.grad_fn.name() != 'CopySlices'
    out.sum().backward()
    torch.testing.assert_close(leaf.grad, (leaf > 0).float())
