import torch
from mmcv.cnn.bricks.transformer import FFN

from mmddetr.models.layers import FastDropout, GradAwareReLU, use_fast_paths


def test_use_fast_paths_keeps_maths_and_state():
    torch.manual_seed(0)
    ffn = FFN(embed_dims=16, feedforward_channels=32, ffn_drop=0.2, dropout_layer=dict(type='Dropout', drop_prob=0.3))
    reference = FFN(embed_dims=16, feedforward_channels=32, ffn_drop=0.2,
                    dropout_layer=dict(type='Dropout', drop_prob=0.3))
    reference.load_state_dict(ffn.state_dict())
    use_fast_paths(ffn)
    assert ffn.state_dict().keys() == reference.state_dict().keys()
    drops = [m for m in ffn.modules() if isinstance(m, torch.nn.Dropout)]
    assert sorted(m.p for m in drops) == [0.2, 0.2, 0.3] and all(type(m) is FastDropout for m in drops)
    assert [type(m) for m in ffn.modules() if isinstance(m, torch.nn.ReLU)] == [GradAwareReLU]
    # eval: identical outputs and gradients
    x = torch.randn(2, 5, 16, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    ffn.eval(), reference.eval()
    y, y_ref = ffn(x), reference(x_ref)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    y.square().sum().backward()
    y_ref.square().sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)


def test_grad_aware_relu_is_in_place_only_without_autograd():
    relu = GradAwareReLU(inplace=True)
    x = torch.randn(4, 6)
    view = (x * 1).view(2, 12)
    with torch.no_grad():
        assert relu(view).data_ptr() == view.data_ptr() and (view >= 0).all()
    leaf = torch.randn(4, 6, requires_grad=True)
    y = (leaf * 1).view(2, 12)
    out = relu(y)
    assert out.data_ptr() != y.data_ptr() and out.grad_fn.name() != 'CopySlices'
    out.sum().backward()
    torch.testing.assert_close(leaf.grad, (leaf > 0).float())
