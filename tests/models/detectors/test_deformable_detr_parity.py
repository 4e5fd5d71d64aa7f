"""Exactness against mmdet 3.3.0's DeformableDETR: its random weights loaded strictly into ours give the same head
outputs, predictions, losses and gradients on a padded batch of two differently sized images."""
import copy
import os

import mmdet
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from random_weights import perturb

MMDET_CONFIGS = os.path.join(os.path.dirname(mmdet.__file__), '.mim', 'configs', 'deformable_detr')
# mmdet 3.3.0 has no single-scale config: its plain one with C5 only and one level in every attention
SINGLE_SCALE = {
    'model.num_feature_levels': 1, 'model.backbone.out_indices': (3, ), 'model.neck.in_channels': [2048],
    'model.neck.num_outs': 1, 'model.encoder.layer_cfg.self_attn_cfg.num_levels': 1,
    'model.decoder.layer_cfg.cross_attn_cfg.num_levels': 1
}
VARIANTS = {  # our config: mmdet's config, changes to it
    'deformable_detr_r50.py': ('deformable-detr_r50_16xb2-50e_coco.py', {}),
    'deformable_detr_r50_refine.py': ('deformable-detr-refine_r50_16xb2-50e_coco.py', {}),
    'deformable_detr_r50_refine_twostage.py': ('deformable-detr-refine-twostage_r50_16xb2-50e_coco.py', {}),
    'deformable_detr_r50_single_scale.py': ('deformable-detr_r50_16xb2-50e_coco.py', SINGLE_SCALE),
}


@pytest.fixture(scope='module', params=list(VARIANTS))
def model_pair(request, no_dropout, packages_of):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmdet.utils import register_all_modules

    from mmddetr.registry import MODELS

    register_all_modules(init_default_scope=False)
    torch.manual_seed(0)
    mmdet_config, changes = VARIANTS[request.param]
    theirs_cfg = Config.fromfile(os.path.join(MMDET_CONFIGS, mmdet_config))
    theirs_cfg.merge_from_dict(changes)
    ours_cfg = Config.fromfile(os.path.join('configs', request.param))
    for cfg in (theirs_cfg, ours_cfg):
        cfg.model.backbone.init_cfg = None
    ours_cfg.model.encoder.layer_cfg.inference_chunk = 100  # predictions below go through the chunked encoder
    with DefaultScope.overwrite_default_scope('mmdet'):
        theirs = MMDET_MODELS.build(theirs_cfg.model)
        theirs.init_weights()
    with DefaultScope.overwrite_default_scope('mmddetr'):
        ours = MODELS.build(ours_cfg.model)
    assert type(theirs).__module__.startswith('mmdet.') and type(ours).__module__.startswith('mmddetr.')
    assert packages_of(theirs) == dict(modules={'mmdet', 'mmcv', 'mmengine', 'torch'}, assigners={'mmdet'},
                                       match_costs={'mmdet'})
    assert packages_of(ours)['assigners'] == packages_of(ours)['match_costs'] == {'mmddetr'}
    perturb(theirs, scale=0.05, statistics=True)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return no_dropout(theirs), no_dropout(ours)


def test_state_dict_names_equal_mmdet(model_pair):
    theirs, ours = model_pair
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key


def test_head_outputs_and_predictions_match(model_pair, det_batch, assert_same_detections):
    theirs, ours = model_pair
    inputs, samples = det_batch()
    theirs.eval(), ours.eval()
    with torch.no_grad():
        cls_t, box_t = theirs._forward(inputs, samples)  # (num_layers, bs, num_queries, num_classes | 4)
        cls_o, box_o = ours._forward(inputs, samples)
        if ours.as_two_stage:  # queries are the top-k proposals: two near-tied scores may come in either order
            order = _same_queries_order(torch.cat([cls_o, box_o], -1), torch.cat([cls_t, box_t], -1), max_swapped=0.02)
            cls_o, box_o = (torch.stack([x[:, b, order[b]] for b in range(len(order))], 1) for x in (cls_o, box_o))
        torch.testing.assert_close(cls_o, cls_t, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(box_o, box_t, atol=1e-4, rtol=1e-4)
        pred_t = theirs.predict(inputs, copy.deepcopy(samples))  # predict fills in and returns the samples it gets
        pred_o = ours.predict(inputs, copy.deepcopy(samples))
    for t, o in zip(pred_t, pred_o):
        assert len(o.pred_instances) == len(t.pred_instances) == 100
        assert_same_detections(_normalised(o), _normalised(t), score_atol=1e-4, box_atol=1e-4)


def _same_queries_order(out_o: torch.Tensor, out_t: torch.Tensor, max_swapped: float) -> list:
    """For each image, the order that puts our queries in mmdet's: the one-to-one matching of mmdet's queries to ours
    whose outputs over all layers (num_layers, bs, num_queries, C) are nearest (proposals that fall outside the
    image give identical queries). The two orders may differ only by swaps among near-tied
    proposal scores: the order must be a permutation moving at most ``max_swapped`` of the queries."""
    orders = []
    for b in range(out_t.shape[1]):
        o, t = (x[:, b].transpose(0, 1).flatten(1) for x in (out_o, out_t))  # (num_queries, num_layers * C)
        order = torch.from_numpy(linear_sum_assignment(torch.cdist(t, o).numpy())[1])  # a permutation
        moved = (order != torch.arange(len(order))).float().mean().item()
        assert moved <= max_swapped, f'{moved:.1%} of the queries came in another order'
        orders.append(order)
    return orders


def _normalised(sample):
    """The sample's predictions with boxes divided by the image size, as the head's boxes are."""
    h, w = sample.ori_shape
    instances = sample.pred_instances.clone()
    instances.bboxes = instances.bboxes / instances.bboxes.new_tensor([w, h, w, h])
    return instances


def test_losses_match(model_pair, det_batch):
    theirs, ours = model_pair
    inputs, samples = det_batch()
    theirs.train(), ours.train()
    losses_t = theirs.loss(inputs, samples)
    losses_o = ours.loss(inputs, samples)
    assert list(losses_o) == list(losses_t)
    for key in losses_t:
        torch.testing.assert_close(losses_o[key], losses_t[key], atol=1e-4, rtol=1e-4, msg=key)


def test_gradients_match_in_float64(model_pair, det_batch):
    """In float64: in float32, a ReLU or matching-cost near-tie flipped by 1e-7 rounding moves some gradients."""
    theirs, ours = (copy.deepcopy(m).double().train() for m in model_pair)
    inputs, samples = det_batch()
    for sample in samples:
        sample.gt_instances.bboxes = sample.gt_instances.bboxes.double()
    sum(theirs.loss(inputs.double(), samples).values()).backward()
    sum(ours.loss(inputs.double(), samples).values()).backward()
    params_o = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        q = params_o[name] if name in params_o else params_o['proposal_head.' + name]
        if p.grad is None:
            assert q.grad is None or not q.grad.any(), name
        else:
            torch.testing.assert_close(q.grad, p.grad, atol=1e-9 * p.grad.abs().max().item(), rtol=1e-6, msg=name)
