"""The four configs train and predict; init_weights; checkpoints in mmdet's layout; configuration errors."""
import math
import os

import pytest
import torch

CONFIGS = ['deformable_detr_r50.py', 'deformable_detr_r50_refine.py', 'deformable_detr_r50_refine_twostage.py',
           'deformable_detr_r50_single_scale.py']


@pytest.mark.parametrize('config', CONFIGS)
def test_config_trains_one_step_and_predicts(config, build_detector, det_batch):
    from mmengine.optim import build_optim_wrapper
    from mmengine.config import Config

    model = build_detector(os.path.join('configs', config))
    optim_wrapper = build_optim_wrapper(model, Config.fromfile(os.path.join('configs', config)).optim_wrapper)
    inputs, samples = det_batch()
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    losses = model.loss(inputs, samples)
    assert all(torch.isfinite(v) for v in losses.values())
    num_layers = model.decoder.num_layers
    assert len(losses) == 3 * (num_layers + int(model.as_two_stage))
    optim_wrapper.update_params(sum(losses.values()))
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert any(n.startswith('encoder.') for n in changed) and any(n.startswith('bbox_head.') for n in changed)
    assert not any(n.startswith('backbone.layer1.') for n in changed)  # frozen stage
    model.eval()
    with torch.no_grad():
        results = model.predict(inputs, samples)
    for sample, result in zip(samples, results):
        pred = result.pred_instances
        assert len(pred) == 100 and pred.bboxes.shape == (100, 4)
        h, w = sample.img_shape
        assert (pred.bboxes[:, 0::2] >= 0).all() and (pred.bboxes[:, 0::2] <= w).all()
        assert (pred.bboxes[:, 1::2] >= 0).all() and (pred.bboxes[:, 1::2] <= h).all()


@pytest.mark.parametrize('config', ['deformable_detr_r50.py', 'deformable_detr_r50_refine_twostage.py'])
def test_init_weights(config, build_detector):
    from mmddetr.models import MultiScaleDeformableAttention
    model = build_detector(os.path.join('configs', config))
    attentions = [m for m in model.modules() if isinstance(m, MultiScaleDeformableAttention)]
    assert len(attentions) == 12
    for attn in attentions:
        assert not attn.sampling_offsets.weight.any() and not attn.attention_weights.weight.any()
        assert not attn.attention_weights.bias.any()
        bias = attn.sampling_offsets.bias.view(8, 4, 4, 2)  # (heads, levels, points, xy)
        theta = torch.arange(8) * (2 * math.pi / 8)
        direction = torch.stack([theta.cos(), theta.sin()], -1)
        direction = direction / direction.abs().max(-1, keepdim=True)[0]
        expected = direction[:, None, None] * torch.arange(1, 5.)[None, None, :, None]
        torch.testing.assert_close(bias, expected.expand(8, 4, 4, 2))
    head = model.bbox_head
    for cls in head.cls_branches:
        torch.testing.assert_close(cls.bias, torch.full_like(cls.bias, -math.log(99)))
    for reg in head.reg_branches:
        assert not reg[-1].weight.any()
    wh_bias = 0.0 if model.as_two_stage else -2.0
    torch.testing.assert_close(head.reg_branches[0][-1].bias[2:], torch.full((2, ), wh_bias))
    ffn = model.encoder.layers[0].ffn.layers[0][0].weight  # xavier-uniform bound
    assert ffn.abs().max() <= math.sqrt(6 / sum(ffn.shape)) and ffn.std() > 0


def test_init_weights_reinitialises_attention_of_any_class_after_xavier(build_detector):
    """Every sub-module of the encoder and decoder with an ``init_weights`` of its own runs it after the blanket
    xavier init, whatever its class: an encoder attention subclassing ours and a decoder self-attention of mmcv's
    class end with the constants their ``init_weights`` set, which xavier's bound (about 0.1 here) excludes."""
    from mmcv.cnn.bricks.transformer import MultiheadAttention
    from torch import nn

    from mmddetr.models import MultiScaleDeformableAttention

    class ConstantValueProjection(MultiScaleDeformableAttention):

        def init_weights(self):
            super().init_weights()
            nn.init.constant_(self.value_proj.weight, 0.25)

    class ConstantSelfAttention(MultiheadAttention):

        def init_weights(self):
            nn.init.constant_(self.attn.in_proj_weight, 0.5)

    model = build_detector('configs/toy/deformable_detr_r18_toy.py', cfg_options={
        'model.encoder.layer_cfg.self_attn_cfg.type': ConstantValueProjection,
        'model.decoder.layer_cfg.self_attn_cfg.type': ConstantSelfAttention})
    for layer in model.encoder.layers:
        attn = layer.self_attn
        assert type(attn) is ConstantValueProjection and (attn.value_proj.weight == 0.25).all()
        assert not attn.sampling_offsets.weight.any() and attn.sampling_offsets.bias.abs().max() == 4  # the ring
    for layer in model.decoder.layers:
        assert type(layer.self_attn) is ConstantSelfAttention and (layer.self_attn.attn.in_proj_weight == 0.5).all()
        assert not layer.cross_attn.sampling_offsets.weight.any()
        ffn = layer.ffn.layers[0][0].weight  # no init_weights of its own: xavier's
        assert ffn.abs().max() <= math.sqrt(6 / sum(ffn.shape)) and ffn.std() > 0


def test_checkpoint_roundtrip_in_mmdet_layout(build_detector, tmp_path):
    from mmengine.runner import load_checkpoint, save_checkpoint

    model = build_detector('configs/deformable_detr_r50_refine_twostage.py')
    keys = list(model.state_dict())
    assert 'memory_trans_fc.weight' in keys and not any(k.startswith('proposal_head.') for k in keys)
    save_checkpoint(model.state_dict(), str(tmp_path / 'ckpt.pth'))
    other = build_detector('configs/deformable_detr_r50_refine_twostage.py')
    load_checkpoint(other, str(tmp_path / 'ckpt.pth'), strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key
    assert torch.equal(other.proposal_head.pos_trans_fc.weight, model.proposal_head.pos_trans_fc.weight)


def test_mismatched_levels_are_named(build_detector):
    with pytest.raises(ValueError, match=r'encoder.layer_cfg.self_attn_cfg.num_levels \(4\) must equal '
                                         r'num_feature_levels \(1\)'):
        build_detector('configs/deformable_detr_r50.py', num_feature_levels=1)
    with pytest.raises(ValueError, match='bbox_head.num_pred_layer is set by the detector'):
        build_detector('configs/deformable_detr_r50.py',
                       bbox_head=dict(type='DeformableDETRHead', num_classes=80, num_pred_layer=3))


def test_valid_ratio():
    from mmddetr.models import DeformableDETR
    mask = torch.ones(2, 4, 5, dtype=torch.bool)
    mask[0, :3, :2] = False
    mask[1] = False
    torch.testing.assert_close(DeformableDETR.get_valid_ratio(mask), torch.tensor([[2 / 5, 3 / 4], [1., 1.]]))


def test_images_without_objects_give_finite_losses(build_detector, det_batch):
    model = build_detector('configs/toy/deformable_detr_r18_toy_refine_twostage.py')
    inputs, samples = det_batch(sizes=((128, 160), (96, 128)), num_gts=(0, 0), num_classes=5)
    model.train()
    losses = model.loss(inputs, samples)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_images_smaller_than_the_coarsest_stride(build_detector, det_batch):
    """robustness.md: they train a step with finite losses and weights, and predict boxes inside the image."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    config = 'configs/deformable_detr_r50_refine_twostage.py'
    model = build_detector(config)
    optim_wrapper = build_optim_wrapper(model, Config.fromfile(config).optim_wrapper)
    inputs, samples = det_batch(sizes=((20, 20), (12, 30)), num_gts=(1, 1))
    model.train()
    losses = model.loss(inputs, samples)
    assert all(torch.isfinite(v) for v in losses.values())
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    optim_wrapper.update_params(sum(losses.values()))
    after = [p for p in model.parameters() if p.requires_grad]
    assert all(torch.isfinite(p).all() for p in after) and any(not torch.equal(a, b) for a, b in zip(after, before))
    model.eval()
    with torch.no_grad():
        results = model.predict(inputs, samples)
    for sample, result in zip(samples, results):
        bboxes, (h, w) = result.pred_instances.bboxes, sample.img_shape
        assert torch.isfinite(bboxes).all() and len(bboxes) == 100
        assert (bboxes[:, 0::2] >= 0).all() and (bboxes[:, 0::2] <= w).all()
        assert (bboxes[:, 1::2] >= 0).all() and (bboxes[:, 1::2] <= h).all()


@pytest.mark.parametrize('sizes', [((16, 512), ), ((512, 16), ), ((32, 32), (400, 300))])
def test_extreme_aspect_ratios_and_mixed_sizes_train_and_predict(sizes, build_detector, det_batch):
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    config = 'configs/toy/deformable_detr_r18_toy_refine_twostage.py'
    model = build_detector(config)
    optim_wrapper = build_optim_wrapper(model, Config.fromfile(config).optim_wrapper)
    inputs, samples = det_batch(sizes=sizes, num_gts=(2, ) * len(sizes), num_classes=5)
    model.train()
    losses = model.loss(inputs, samples)
    assert all(torch.isfinite(v) for v in losses.values())
    optim_wrapper.update_params(sum(losses.values()))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        results = model.predict(inputs, samples)
    for sample, result in zip(samples, results):
        bboxes, (h, w) = result.pred_instances.bboxes, sample.img_shape
        assert torch.isfinite(bboxes).all() and torch.isfinite(result.pred_instances.scores).all()
        assert (bboxes[:, 0::2] >= 0).all() and (bboxes[:, 0::2] <= w).all()
        assert (bboxes[:, 1::2] >= 0).all() and (bboxes[:, 1::2] <= h).all()


def test_level_masks_take_the_pixels_of_torchs_nearest_interpolation():
    """For every level size a backbone gives (ceil(in / 2**k)); not for every ratio, where ATen's float32 rounding
    takes one index lower (464 to 154: row 77 is 231 in torch, 77 * 464 / 154 = 232 exactly)."""
    import torch.nn.functional as F

    from mmddetr.models.detectors.deformable_detr import nearest_source

    def interpolated(out_size, in_size):
        index = torch.arange(float(in_size)).view(1, 1, in_size, 1)
        return F.interpolate(index, size=(out_size, 1)).view(-1).long()

    for in_size in range(1, 4097):
        for out_size in {-(-in_size // 2**k) for k in range(7)}:
            assert torch.equal(nearest_source(out_size, in_size, 'cpu'), interpolated(out_size, in_size)), in_size
    differ = (nearest_source(154, 464, 'cpu') != interpolated(154, 464)).nonzero().flatten().tolist()
    assert differ == [77] and interpolated(154, 464)[77] == 231 and nearest_source(154, 464, 'cpu')[77] == 232
