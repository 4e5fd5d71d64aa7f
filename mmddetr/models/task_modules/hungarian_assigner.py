"""One-to-one matching of predictions to targets by the Hungarian algorithm (scipy's linear_sum_assignment)."""
from typing import List, Optional, Union

import torch
from mmdet.models.task_modules.assigners import AssignResult, BaseAssigner
from mmengine.structures import InstanceData
from scipy.optimize import linear_sum_assignment

from mmddetr.registry import TASK_UTILS


@TASK_UTILS.register_module()
class HungarianAssigner(BaseAssigner):
    """Assigns each prediction a target (1-based index) or background (0) by minimising the summed match costs.

    Costs are summed in float32 (our costs upcast; others are cast here), so AMP never hands the solver float16.

    Args:
        match_costs (dict | list[dict]): Configs of the match costs, e.g. ``FocalLossCost``, ``BBoxL1Cost``,
            ``IoUCost``.
    """

    def __init__(self, match_costs: Union[dict, List[dict]]) -> None:
        if isinstance(match_costs, dict):
            match_costs = [match_costs]
        if not match_costs:
            raise ValueError('match_costs: expected at least one match cost config, got an empty list')
        self.match_costs = [TASK_UTILS.build(cost) for cost in match_costs]

    def assign(self, pred_instances: InstanceData, gt_instances: InstanceData, img_meta: Optional[dict] = None,
               **kwargs) -> AssignResult:
        """Match ``pred_instances`` (num_preds) to ``gt_instances`` (num_gts, with ``labels``).

        Returns:
            AssignResult: ``gt_inds`` (num_preds,) 0 for background, i + 1 for target i; ``labels`` (num_preds,)
            the matched target's label, -1 for background.
        """
        num_gts, num_preds = len(gt_instances), len(pred_instances)
        labels = gt_instances.labels
        gt_inds = labels.new_zeros(num_preds, dtype=torch.long)
        assigned_labels = labels.new_full((num_preds, ), -1, dtype=torch.long)
        if num_gts == 0 or num_preds == 0:
            return AssignResult(num_gts=num_gts, gt_inds=gt_inds, max_overlaps=None, labels=assigned_labels)
        costs = [match_cost(pred_instances=pred_instances, gt_instances=gt_instances, img_meta=img_meta).float()
                 for match_cost in self.match_costs]  # each (num_preds, num_gts)
        bad = [type(match_cost).__name__ for match_cost, c in zip(self.match_costs, costs) if not c.isfinite().all()]
        if bad:
            raise FloatingPointError(f'HungarianAssigner: the matching costs {bad} have NaN or inf entries; the '
                                     'predictions or targets of this image are not finite (check the losses and the '
                                     'boxes)')
        cost = torch.stack(costs).sum(0).detach().cpu()
        pred_idx, gt_idx = (torch.from_numpy(idx).to(labels.device) for idx in linear_sum_assignment(cost.numpy()))
        gt_inds[pred_idx] = gt_idx + 1
        assigned_labels[pred_idx] = labels[gt_idx]
        return AssignResult(num_gts=num_gts, gt_inds=gt_inds, max_overlaps=None, labels=assigned_labels)
