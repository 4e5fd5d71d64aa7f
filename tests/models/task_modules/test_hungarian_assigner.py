"""HungarianAssigner and its match costs: optimality, empty targets, float32 costs, parity with mmdet."""
import itertools

import pytest
import torch
from mmdet.models.task_modules.assigners import HungarianAssigner as MMDetAssigner
from mmdet.registry import TASK_UTILS as MMDET_TASK_UTILS
from mmengine.structures import InstanceData

from mmddetr.models import HungarianAssigner
from mmddetr.registry import TASK_UTILS

COSTS = [dict(type='FocalLossCost', weight=2.0), dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
         dict(type='IoUCost', iou_mode='giou', weight=2.0)]
IMG_META = dict(img_shape=(60, 80))


def random_boxes(n, gen, dtype=torch.float32):
    xy = torch.rand(n, 2, generator=gen) * torch.tensor([60., 40.])
    wh = torch.rand(n, 2, generator=gen) * 20 + 1
    return torch.cat([xy, xy + wh], -1).to(dtype)


def instances(num_preds, num_gts, seed=0, dtype=torch.float32, num_classes=5):
    gen = torch.Generator().manual_seed(seed)
    pred = InstanceData(scores=torch.randn(num_preds, num_classes, generator=gen).to(dtype),
                        bboxes=random_boxes(num_preds, gen, dtype))
    gt = InstanceData(labels=torch.randint(num_classes, (num_gts, ), generator=gen),
                      bboxes=random_boxes(num_gts, gen))
    return pred, gt


def total_cost(assigner, pred, gt, gt_inds):
    cost = sum(c(pred_instances=pred, gt_instances=gt, img_meta=IMG_META) for c in assigner.match_costs)
    return sum(cost[p, g - 1].item() for p, g in enumerate(gt_inds.tolist()) if g > 0)


@pytest.mark.parametrize('num_preds, num_gts, seed', [(5, 3, 0), (4, 4, 1), (6, 2, 2), (3, 1, 3)])
def test_assignment_is_optimal_against_brute_force(num_preds, num_gts, seed):
    assigner = HungarianAssigner(COSTS)
    pred, gt = instances(num_preds, num_gts, seed)
    result = assigner.assign(pred, gt, IMG_META)
    matched = result.gt_inds[result.gt_inds > 0]
    assert sorted(matched.tolist()) == list(range(1, num_gts + 1))  # every target exactly once
    cost = sum(c(pred_instances=pred, gt_instances=gt, img_meta=IMG_META) for c in assigner.match_costs)
    best = min(sum(cost[p, g].item() for g, p in enumerate(perm))
               for perm in itertools.permutations(range(num_preds), num_gts))
    assert total_cost(assigner, pred, gt, result.gt_inds) == pytest.approx(best, abs=1e-4)
    assert (result.labels[result.gt_inds > 0] == gt.labels[result.gt_inds[result.gt_inds > 0] - 1]).all()
    assert (result.labels[result.gt_inds == 0] == -1).all()


def test_empty_targets_assign_everything_to_background():
    pred, gt = instances(7, 0)
    result = HungarianAssigner(COSTS).assign(pred, gt, IMG_META)
    assert result.num_gts == 0 and (result.gt_inds == 0).all() and (result.labels == -1).all()


def test_half_precision_predictions_give_float32_costs():
    pred, gt = instances(20, 4, dtype=torch.float16)
    pred.scores = pred.scores * 30  # large logits: float16 focal costs degenerate
    for cfg in COSTS:
        cost = TASK_UTILS.build(cfg)
        assert type(cost).__module__ == 'mmddetr.models.task_modules.match_costs'
        assert cost(pred_instances=pred, gt_instances=gt, img_meta=IMG_META).dtype == torch.float32
    pred32 = InstanceData(scores=pred.scores.float(), bboxes=pred.bboxes.float())
    assigner = HungarianAssigner(COSTS)
    torch.testing.assert_close(assigner.assign(pred, gt, IMG_META).gt_inds,
                               assigner.assign(pred32, gt, IMG_META).gt_inds)


@pytest.mark.parametrize('seed', range(3))
def test_costs_and_assignment_equal_mmdets(seed):
    pred, gt = instances(30, 6, seed)
    ours, theirs = HungarianAssigner(COSTS), MMDetAssigner([dict(cfg, type='mmdet.' + cfg['type']) for cfg in COSTS])
    assert [type(c).__module__ for c in ours.match_costs] == ['mmddetr.models.task_modules.match_costs'] * 3
    assert [type(c).__module__ for c in theirs.match_costs] == ['mmdet.models.task_modules.assigners.match_cost'] * 3
    for our_cost, their_cost in zip(ours.match_costs, theirs.match_costs):
        torch.testing.assert_close(our_cost(pred_instances=pred, gt_instances=gt, img_meta=IMG_META),
                                   their_cost(pred_instances=pred, gt_instances=gt, img_meta=IMG_META))
    torch.testing.assert_close(ours.assign(pred, gt, IMG_META).gt_inds, theirs.assign(pred, gt, IMG_META).gt_inds)


def test_non_finite_costs_name_the_cost():
    pred, gt = instances(5, 2)
    pred.bboxes[0, 0] = float('nan')
    with pytest.raises(FloatingPointError, match='BBoxL1Cost'):
        HungarianAssigner(COSTS).assign(pred, gt, IMG_META)


def test_bad_configs():
    with pytest.raises(ValueError, match='match_costs'):
        HungarianAssigner([])
    with pytest.raises(ValueError, match='box_format'):
        TASK_UTILS.build(dict(type='BBoxL1Cost', box_format='cxcy'))


def test_reachable_from_mmdet_configs():
    assigner = MMDET_TASK_UTILS.build(dict(type='mmddetr.HungarianAssigner', match_costs=COSTS))
    assert isinstance(assigner, HungarianAssigner)
