"""tools/benchmark_model.py's toy row compares like with like: mmdet's classes (its two-stage head widened to any
embed dims) on our toy config take the same weights as ours and give the same predictions and losses."""
import copy
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'tools'))
from benchmark_model import build, make_batch, toy_train_size  # noqa: E402


def test_toy_row_builds_mmdet_and_ours_alike(no_dropout):
    theirs, ours = (no_dropout(build(impl, 'cpu', toy=True)) for impl in ('mmdet', 'ours'))
    assert type(theirs).__name__ == 'DeformableDETRAnyDims'
    assert type(ours).__module__.startswith('mmddetr.')
    assert ours.embed_dims == theirs.embed_dims == 128
    inputs, samples = make_batch(2, 96, 128, 'cpu', num_classes=5)
    theirs.eval(), ours.eval()
    with torch.no_grad():
        # predict fills in and returns the samples it gets
        pred_t, pred_o = theirs.predict(inputs, copy.deepcopy(samples)), ours.predict(inputs, copy.deepcopy(samples))
    for t, o in zip(pred_t, pred_o):
        torch.testing.assert_close(o.pred_instances.scores, t.pred_instances.scores, atol=1e-4, rtol=1e-4)
    theirs.train(), ours.train()
    losses_t, losses_o = theirs.loss(inputs, samples), ours.loss(inputs, samples)
    assert list(losses_o) == list(losses_t)
    for key in losses_t:
        torch.testing.assert_close(losses_o[key], losses_t[key], atol=1e-4, rtol=1e-4, msg=key)


def test_dino_rows_are_mmdets_dino_and_ours():
    """mmdet's DINO on mmcv's attention against mmddetr's DINO (our layers) from the same toy config and weights."""
    from mmcv.ops import MultiScaleDeformableAttention as MmcvAttention
    from mmdet.models.detectors import DINO as MmdetDINO

    from mmddetr.models import DINO, FastMultiScaleDeformableAttention, MultiScaleDeformableAttention
    theirs, ours = (build(impl, 'cpu', toy=True, model_name='dino') for impl in ('mmdet', 'ours'))
    assert type(theirs) is MmdetDINO and type(ours) is DINO
    assert {type(m) for m in theirs.modules() if isinstance(m, (MmcvAttention, MultiScaleDeformableAttention))} == {
        MmcvAttention}
    assert {type(m) for m in ours.modules() if isinstance(m, (MmcvAttention, MultiScaleDeformableAttention))} == {
        FastMultiScaleDeformableAttention}  # the toy config's fast modules
    inputs, samples = make_batch(2, 96, 128, 'cpu', num_classes=5)
    theirs.eval(), ours.eval()
    with torch.no_grad():
        for t, o in zip(theirs.predict(inputs, samples), ours.predict(inputs, samples)):
            torch.testing.assert_close(o.pred_instances.scores, t.pred_instances.scores, atol=1e-4, rtol=1e-4)


def test_toy_row_times_the_image_size_the_toy_config_trains_at():
    from mmengine.config import Config
    cfg = Config(dict(train_dataloader=dict(dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'), dict(type='Resize', scale=(320, 288), keep_ratio=True)]))))
    assert toy_train_size(cfg) == (288, 320)  # mmdet's scale is (width, height)
