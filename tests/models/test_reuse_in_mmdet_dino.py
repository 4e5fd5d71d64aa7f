"""Our encoder and attention inside mmdet's own DINO: same weights load strictly, same predictions, and it trains.

mmdet's DINO hard-codes its encoder and attention classes in ``_init_layers``, so the swap is made on the built
model with modules built from DINO's own config dicts through ``type='mmddetr.…'``.
"""
import copy
import os

import mmdet
import torch
from torch import nn

DINO_CONFIG = os.path.join(os.path.dirname(mmdet.__file__), '.mim', 'configs', 'dino',
                           'dino-4scale_r50_8xb2-12e_coco.py')


def test_dino_with_our_encoder_and_cross_attention(det_batch, assert_same_detections):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from mmddetr.models import DeformableDetrTransformerEncoder, MultiScaleDeformableAttention

    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(DINO_CONFIG)
    cfg.model.backbone.init_cfg = None
    cfg.model.num_queries = 50
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        theirs = MODELS.build(cfg.model)
        theirs.init_weights()
        ours = copy.deepcopy(theirs)
        ours.encoder = MODELS.build(dict(type='mmddetr.DeformableDetrTransformerEncoder', **cfg.model.encoder))
        for layer in ours.decoder.layers:
            layer.cross_attn = MODELS.build(
                dict(type='mmddetr.MultiScaleDeformableAttention', **cfg.model.decoder.layer_cfg.cross_attn_cfg))
    assert isinstance(ours.encoder, DeformableDetrTransformerEncoder)
    assert all(isinstance(layer.cross_attn, MultiScaleDeformableAttention) for layer in ours.decoder.layers)
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    inputs, samples = det_batch()
    theirs.eval(), ours.eval()
    with torch.no_grad():
        # per-query head outputs, before the final top-k over queries x classes
        for o, t in zip(ours._forward(inputs, copy.deepcopy(samples)), theirs._forward(inputs, copy.deepcopy(samples))):
            torch.testing.assert_close(o, t, atol=1e-4, rtol=1e-4)
        expected = theirs.predict(inputs, copy.deepcopy(samples))
        results = ours.predict(inputs, copy.deepcopy(samples))
    for e, r in zip(expected, results):
        assert_same_detections(r.pred_instances, e.pred_instances, box_atol=1e-2, box_rtol=1e-4)
    ours.train()
    losses = ours.loss(inputs, samples)
    assert any(k.startswith('dn_') for k in losses) and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    grad = ours.encoder.layers[0].self_attn.sampling_offsets.weight.grad
    assert grad is not None and grad.abs().sum() > 0
