"""mmdet's own DETR-family modules on our attention (``mmddetr.mmdet_ops``): each built twice from mmdet's config,
once with mmcv's attention and once with ours; mmdet's state dict loads strictly into ours, outputs agree to 1e-4 and
float64 gradients to rounding. Pretrained weights and text encoders cannot be fetched here: the weights are mmdet's
random init plus noise, and Grounding DINO's parts that run the attention are built alone."""
import copy
import os
import subprocess
import sys

import mmdet
import pytest
import torch
from mmcv.ops import MultiScaleDeformableAttention as MmcvAttention
from mmengine.config import Config
from torch.utils._pytree import tree_leaves

from mmddetr.models import MultiScaleDeformableAttention, mmdet_attention, mmdet_uses_mmddetr_attention

MMDET_CONFIGS = os.path.join(os.path.dirname(mmdet.__file__), '.mim', 'configs')
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _mmdet_config(path: str) -> Config:
    return Config.fromfile(os.path.join(MMDET_CONFIGS, path))


def _build_pair(build, perturb):
    """(theirs, ours): ``build()`` with mmcv's attention and with ours, the same (noisy) weights in both."""
    torch.manual_seed(0)
    with mmdet_attention(mmddetr=False):
        theirs = build()
    with mmdet_attention():
        ours = build()
    kinds = [(type(m) for m in model.modules() if isinstance(m, (MmcvAttention, MultiScaleDeformableAttention)))
             for model in (theirs, ours)]
    kinds = [list(k) for k in kinds]
    assert kinds[0] and set(kinds[0]) == {MmcvAttention} and kinds[1] == [MultiScaleDeformableAttention] * len(kinds[0])
    perturb(theirs)  # off the init (zero attention logits, symmetric offsets)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return theirs.eval(), ours.eval()


def _assert_same_float64_gradients(theirs, ours, loss_of, atol=1e-9):
    grads = []
    for model in (theirs, ours):
        model = copy.deepcopy(model).double()
        torch.manual_seed(1)  # denoising queries are drawn at random
        loss_of(model).backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    attention_grads = 0
    for name, grad in grads[0].items():
        if grad is None:
            assert grads[1][name] is None or not grads[1][name].any(), name
            continue
        torch.testing.assert_close(grads[1][name], grad, atol=atol, rtol=1e-7, msg=name)
        attention_grads += 'sampling_offsets' in name and bool(grad.any())
    assert attention_grads > 0


def _build_detector(cfg: Config):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.registry import DefaultScope

    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(copy.deepcopy(cfg))  # mmdet's detectors edit their config
    model.init_weights()
    return model


@pytest.mark.parametrize('config', ['dino/dino-4scale_r50_8xb2-12e_coco.py',
                                    'ddq/ddq-detr-4scale_r50_8xb2-12e_coco.py'])
def test_detector_on_our_attention(config, det_batch, assert_same_detections, packages_of, perturb):
    """DINO and DDQ-DETR as mmdet's configs build them. DDQ-DETR selects distinct queries by mmcv's NMS, whose
    kernel is float32 only: its float64 gradients are taken with that selection off (``dqs_cfg=None``: mmcv's
    ``batched_nms`` then only sorts by score), its float32 outputs, predictions and losses with it on."""
    cfg = _mmdet_config(config).model
    cfg.backbone.init_cfg = None
    cfg.num_queries = 60
    theirs, ours = _build_pair(lambda: _build_detector(cfg), perturb)
    assert packages_of(theirs) == dict(modules={'mmdet', 'mmcv', 'mmengine', 'torch'}, assigners={'mmdet'},
                                       match_costs={'mmdet'})
    assert packages_of(ours) == dict(packages_of(theirs), modules={'mmdet', 'mmddetr', 'mmcv', 'mmengine', 'torch'})
    _assert_same_detector(theirs, ours, det_batch, assert_same_detections)


def test_mmddetr_dino_is_mmdet_dino(det_batch, assert_same_detections, packages_of, perturb):
    """configs/dino (mmddetr's DINO: our encoder and decoder layers, attention, FFN and self-attention, the fast
    modules as shipped) against mmdet's DINO from mmdet's config on mmcv's attention: mmdet's state dict loads strictly;
    outputs, losses (denoising queries included) and float64 gradients agree."""
    from mmddetr.models import DINO, DeformableDetrTransformerEncoder, DinoTransformerDecoder
    from mmddetr.models.fast import (FastDeformableDetrTransformerDecoderLayer,
                                     FastDeformableDetrTransformerEncoderLayer, FastFFN, FastMultiheadAttention,
                                     FastMultiScaleDeformableAttention)
    from mmddetr.registry import MODELS
    from mmengine.registry import DefaultScope

    theirs_cfg = _mmdet_config('dino/dino-4scale_r50_8xb2-12e_coco.py').model
    ours_cfg = Config.fromfile(os.path.join(REPO, 'configs', 'dino', 'dino_4scale_r50_12e.py')).model
    for cfg in (theirs_cfg, ours_cfg):
        cfg.backbone.init_cfg = None
        cfg.num_queries = 60
    ours_cfg.encoder.layer_cfg.inference_chunk = 100  # predictions below go through the chunked encoder
    torch.manual_seed(0)
    with mmdet_attention(mmddetr=False):
        theirs = _build_detector(theirs_cfg)
    with DefaultScope.overwrite_default_scope('mmddetr'):
        ours = MODELS.build(ours_cfg)
    ours.init_weights()  # mmdet's initialisation reaches our attention modules too
    for layer in ours.encoder.layers:
        assert layer.self_attn.attention_weights.weight.abs().sum() == 0
    assert type(ours) is DINO and type(ours.encoder) is DeformableDetrTransformerEncoder
    assert type(ours.decoder) is DinoTransformerDecoder
    assert all(type(layer) is FastDeformableDetrTransformerEncoderLayer for layer in ours.encoder.layers)
    assert all(type(layer) is FastDeformableDetrTransformerDecoderLayer for layer in ours.decoder.layers)
    kinds = {type(m) for m in ours.modules()}
    assert {FastMultiScaleDeformableAttention, FastMultiheadAttention, FastFFN} <= kinds and MmcvAttention not in kinds
    assert packages_of(ours)['assigners'] == packages_of(ours)['match_costs'] == {'mmddetr'}
    assert packages_of(theirs) == dict(modules={'mmdet', 'mmcv', 'mmengine', 'torch'}, assigners={'mmdet'},
                                       match_costs={'mmdet'})
    perturb(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    _assert_same_detector(theirs.eval(), ours.eval(), det_batch, assert_same_detections)


def _assert_same_detector(theirs, ours, det_batch, assert_same_detections):
    """Per-query head outputs and detections, training losses (denoising queries included) and float64 gradients of
    every parameter through the per-query head outputs."""
    from mmdet.models.detectors import DDQDETR

    inputs, samples = det_batch()
    with torch.no_grad():
        # per-query head outputs, before any top-k over queries x classes
        for o, t in zip(tree_leaves(ours._forward(inputs, copy.deepcopy(samples))),
                        tree_leaves(theirs._forward(inputs, copy.deepcopy(samples)))):
            torch.testing.assert_close(o, t, atol=1e-4, rtol=1e-4)
        expected = theirs.predict(inputs, copy.deepcopy(samples))
        results = ours.predict(inputs, copy.deepcopy(samples))
    for e, r in zip(expected, results):
        assert_same_detections(r.pred_instances, e.pred_instances, box_atol=1e-2, box_rtol=1e-4)

    # training losses, denoising queries included (mmdet draws them in float32 only), then backward on our op
    theirs.train(), ours.train()
    losses = []
    for model in (theirs, ours):
        torch.manual_seed(1)
        losses.append(model.loss(inputs, copy.deepcopy(samples)))
    assert list(losses[1]) == list(losses[0]) and any(k.startswith('dn_') for k in losses[0])
    for key, value in losses[0].items():
        torch.testing.assert_close(losses[1][key], value, atol=1e-4, rtol=1e-4, msg=key)
    ours.parse_losses(losses[1])[0].backward()
    assert ours.encoder.layers[0].self_attn.sampling_offsets.weight.grad.abs().sum() > 0

    # float64 gradients of every parameter through the per-query head outputs (eval: no denoising)
    theirs.eval(), ours.eval()

    def outputs(model, images):
        return [t for t in tree_leaves(model._forward(images, copy.deepcopy(samples))) if t.is_floating_point()]

    def float64_loss(model):  # a float64 copy
        if isinstance(model, DDQDETR):
            model.cache_dict['dqs_cfg'] = None  # distinct-query selection off: mmcv's NMS kernel is float32 only
        return sum((out * w).sum() for out, w in zip(outputs(model, inputs.double()), weights))

    with torch.no_grad():
        weights = [torch.randn(out.shape, dtype=torch.float64) for out in outputs(theirs, inputs)]
    _assert_same_float64_gradients(theirs, ours, float64_loss)


def test_mask2former_pixel_decoder_on_our_attention(perturb):
    from mmdet.registry import MODELS
    cfg = _mmdet_config('mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py').model.panoptic_head.pixel_decoder
    cfg.update(in_channels=[32, 64, 128, 256], strides=[4, 8, 16, 32], feat_channels=64, out_channels=64)
    cfg.encoder.num_layers = 2
    cfg.encoder.layer_cfg.self_attn_cfg.update(embed_dims=64, num_heads=4)
    cfg.encoder.layer_cfg.ffn_cfg.update(embed_dims=64, feedforward_channels=128)
    cfg.positional_encoding.num_feats = 32

    def build():
        decoder = MODELS.build(cfg)
        decoder.init_weights()
        return decoder

    theirs, ours = _build_pair(build, perturb)
    gen = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, c, 64 // s, 80 // s, generator=gen) for c, s in zip(cfg.in_channels, cfg.strides)]
    with torch.no_grad():
        (mask_t, levels_t), (mask_o, levels_o) = theirs(feats), ours(feats)
    torch.testing.assert_close(mask_o, mask_t, atol=1e-4, rtol=1e-4)
    for o, t in zip(levels_o, levels_t):
        torch.testing.assert_close(o, t, atol=1e-4, rtol=1e-4)
    weights = torch.randn(mask_t.shape, generator=gen, dtype=torch.float64)

    def loss(model):
        mask, levels = model([f.double() for f in feats])
        return (mask * weights).sum() + sum(level.square().mean() for level in levels)

    _assert_same_float64_gradients(theirs, ours, loss)


def test_grounding_dino_encoder_and_decoder_layer_on_our_attention(perturb):
    """Grounding DINO's visual-text encoder (deformable self-attention, fusion and text layers) and its decoder layer
    (deformable cross-attention to the image after text cross-attention), as its config builds them."""
    from mmdet.models.layers.transformer.grounding_dino_layers import (GroundingDinoTransformerDecoderLayer,
                                                                       GroundingDinoTransformerEncoder)
    model = _mmdet_config('grounding_dino/grounding_dino_r50_scratch_8xb2_1x_coco.py').model
    encoder_cfg = copy.deepcopy(model.encoder)
    encoder_cfg.update(num_layers=2, num_cp=0)  # num_cp > 0 needs fairscale's checkpointing
    layer_cfg = copy.deepcopy(model.decoder.layer_cfg)
    shapes = torch.tensor([[8, 10], [4, 5], [2, 3], [1, 2]])
    start = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    num_keys, bs, n_text = int(shapes.prod(1).sum()), 2, 7
    gen = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=gen)

    feat, pos, text = rand(bs, num_keys, 256), rand(bs, num_keys, 256), rand(bs, n_text, 256)
    key_padding_mask = torch.zeros(bs, num_keys, dtype=torch.bool)
    key_padding_mask[1, :5] = True
    valid_ratios = torch.ones(bs, 4, 2)
    text_padding = torch.zeros(bs, n_text, dtype=torch.bool)
    text_padding[1, -2:] = True
    text_self_attention = torch.ones(bs, n_text, n_text, dtype=torch.bool)
    queries, query_pos, boxes = rand(bs, 11, 256), rand(bs, 11, 256), torch.rand(bs, 11, 4, generator=gen)
    reference_points = boxes[:, :, None] * 0.5 + 0.25  # (bs, num_query, num_levels, 4) cx, cy, w, h
    reference_points = reference_points.expand(bs, 11, 4, 4)

    def run_encoder(model, dtype=torch.float32):
        return model(feat.to(dtype), pos.to(dtype), key_padding_mask, shapes, start, valid_ratios.to(dtype),
                     memory_text=text.to(dtype), text_attention_mask=text_padding,
                     text_self_attention_masks=text_self_attention)

    def run_decoder_layer(model, dtype=torch.float32):
        return model(queries.to(dtype), value=feat.to(dtype), query_pos=query_pos.to(dtype),
                     key_padding_mask=key_padding_mask, memory_text=text.to(dtype), text_attention_mask=text_padding,
                     reference_points=reference_points.to(dtype), spatial_shapes=shapes, level_start_index=start)

    for build, run in ((lambda: GroundingDinoTransformerEncoder(**encoder_cfg), run_encoder),
                       (lambda: GroundingDinoTransformerDecoderLayer(**layer_cfg), run_decoder_layer)):
        theirs, ours = _build_pair(build, perturb)
        with torch.no_grad():
            for o, t in zip(tree_leaves(run(ours)), tree_leaves(run(theirs))):
                torch.testing.assert_close(o, t, atol=1e-4, rtol=1e-4)
        _assert_same_float64_gradients(
            theirs, ours, lambda m, run=run: sum(out.sin().sum() for out in tree_leaves(
                run(m, torch.float64))))


def test_switch_is_scoped_and_off_by_default():
    """Importing mmddetr changes nothing in mmdet; ``mmddetr.mmdet_ops`` switches it on; the context restores it."""
    script = ('import mmddetr.models as m; import mmdet.models.layers.transformer.deformable_detr_layers as d; '
              'from mmcv.ops import MultiScaleDeformableAttention as A; assert d.MultiScaleDeformableAttention is A; '
              'assert not m.mmdet_uses_mmddetr_attention(); import mmddetr.mmdet_ops; '
              'assert m.mmdet_uses_mmddetr_attention(); m.use_mmddetr_attention_in_mmdet(False); '
              'assert d.MultiScaleDeformableAttention is A; print("ok")')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == 'ok', proc.stderr
    before = mmdet_uses_mmddetr_attention()
    with mmdet_attention():
        assert mmdet_uses_mmddetr_attention()
        with mmdet_attention(mmddetr=False):
            assert not mmdet_uses_mmddetr_attention()
        assert mmdet_uses_mmddetr_attention()
    assert mmdet_uses_mmddetr_attention() == before


def test_custom_import_in_an_mmdet_config_builds_our_attention(tmp_path):
    """The documented opt-in, end to end: an mmdet config plus one ``custom_imports`` line, built by mmengine's
    Runner machinery in a fresh process."""
    config = tmp_path / 'dino_on_mmddetr.py'
    config.write_text(f"_base_ = '{os.path.join(MMDET_CONFIGS, 'dino', 'dino-4scale_r50_8xb2-12e_coco.py')}'\n"
                      "custom_imports = dict(imports=['mmddetr.mmdet_ops'], allow_failed_imports=False)\n"
                      "model = dict(backbone=dict(init_cfg=None))\n")
    script = ('import sys; from mmengine.config import Config; from mmdet.registry import MODELS; '
              'from mmdet.utils import register_all_modules; register_all_modules(); '
              'cfg = Config.fromfile(sys.argv[1]); model = MODELS.build(cfg.model); '
              'from mmddetr.models import MultiScaleDeformableAttention as A; '
              'print(sum(isinstance(m, A) for m in model.modules()))')
    proc = subprocess.run([sys.executable, '-c', script, str(config)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == '12'  # 6 encoder self- and 6 decoder cross-attentions


def test_our_dino_config_is_mmdets_recipe():
    """configs/dino/dino_4scale_r50_12e.py builds on Deformable DETR R50's config; its model and schedule are mmdet's
    DINO-4scale R50 12-epoch recipe (num_feature_levels=4 written out, mmdet's default), built as mmddetr's DINO
    on the fast modules (configs/_base_/fast_modules.py's three types)."""
    ours = Config.fromfile('configs/dino/dino_4scale_r50_12e.py')
    theirs = _mmdet_config('dino/dino-4scale_r50_8xb2-12e_coco.py')
    assert ours.model.data_preprocessor.pop('type') == 'ChannelsLastDetDataPreprocessor'
    assert theirs.model.data_preprocessor.pop('type') == 'DetDataPreprocessor'  # our detectors' default
    assert ours.model.encoder.layer_cfg.pop('type') == 'FastDeformableDetrTransformerEncoderLayer'
    assert ours.model.decoder.layer_cfg.pop('type') == 'FastDeformableDetrTransformerDecoderLayer'
    assert ours.model.to_dict() == dict(theirs.model.to_dict(), num_feature_levels=4)
    for key in ('param_scheduler', 'train_cfg', 'auto_scale_lr', 'test_pipeline'):
        assert ours[key] == theirs[key], key
    assert ours.optim_wrapper.optimizer.lr == theirs.optim_wrapper.optimizer.lr == 1e-4
    assert ours.optim_wrapper.paramwise_cfg == theirs.optim_wrapper.paramwise_cfg
    from mmddetr.models import DINO
    from mmddetr.registry import MODELS
    assert ours.default_scope == 'mmddetr' and MODELS.get(ours.model.type) is DINO  # mmdet's keys, our classes
