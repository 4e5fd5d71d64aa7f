"""Matching costs of Deformable DETR, computed in float32 whatever the predictions' dtype.

Under AMP the predictions are float16; float16 costs overflow or lose the small differences the Hungarian solver
needs (a known source of NaN in mmdet's matcher), so every cost here upcasts first. Each returns a
(num_preds, num_gts) matrix, already multiplied by its ``weight``; names and arguments follow mmdet's.
"""
from typing import Optional

import torch
from mmdet.models.task_modules.assigners.match_cost import BaseMatchCost
from mmdet.structures.bbox import bbox_overlaps, bbox_xyxy_to_cxcywh
from mmengine.structures import InstanceData
from torch import Tensor

from mmddetr.registry import TASK_UTILS


@TASK_UTILS.register_module()
class FocalLossCost(BaseMatchCost):
    """Focal-loss classification cost: ``pos_cost - neg_cost`` of each prediction at each target's class.

    Args:
        alpha (float): Focal alpha. Default: 0.25.
        gamma (float): Focal gamma. Default: 2.
        eps (float): Added inside the logs. Default: 1e-12.
        weight (float): Cost weight. Default: 1.
    """

    def __init__(self, alpha: float = 0.25, gamma: float = 2, eps: float = 1e-12, weight: float = 1.) -> None:
        super().__init__(weight=weight)
        self.alpha = alpha
        self.gamma = gamma
        self.eps = eps

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData, img_meta: Optional[dict] = None,
                 **kwargs) -> Tensor:
        """``pred_instances.scores``: (num_preds, num_classes) logits; ``gt_instances.labels``: (num_gts,)."""
        prob = pred_instances.scores.float().sigmoid()  # (num_preds, num_classes)
        neg_cost = -(1 - prob + self.eps).log() * (1 - self.alpha) * prob.pow(self.gamma)
        pos_cost = -(prob + self.eps).log() * self.alpha * (1 - prob).pow(self.gamma)
        labels = gt_instances.labels
        return (pos_cost[:, labels] - neg_cost[:, labels]) * self.weight


@TASK_UTILS.register_module()
class BBoxL1Cost(BaseMatchCost):
    """L1 distance between boxes normalised by the image size.

    Args:
        box_format (str): 'xyxy', or 'xywh' to compare (cx, cy, w, h) as Deformable DETR does. Default: 'xyxy'.
        weight (float): Cost weight. Default: 1.
    """

    def __init__(self, box_format: str = 'xyxy', weight: float = 1.) -> None:
        super().__init__(weight=weight)
        if box_format not in ('xyxy', 'xywh'):
            raise ValueError(f"box_format must be 'xyxy' or 'xywh', got {box_format!r}")
        self.box_format = box_format

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData, img_meta: Optional[dict] = None,
                 **kwargs) -> Tensor:
        """``bboxes`` of both: (n, 4) unnormalised (x1, y1, x2, y2); ``img_meta['img_shape']``: (h, w)."""
        pred_bboxes, gt_bboxes = pred_instances.bboxes.float(), gt_instances.bboxes.float()
        if self.box_format == 'xywh':
            pred_bboxes, gt_bboxes = bbox_xyxy_to_cxcywh(pred_bboxes), bbox_xyxy_to_cxcywh(gt_bboxes)
        img_h, img_w = img_meta['img_shape']
        factor = gt_bboxes.new_tensor([img_w, img_h, img_w, img_h])[None]
        return torch.cdist(pred_bboxes / factor, gt_bboxes / factor, p=1) * self.weight


@TASK_UTILS.register_module()
class IoUCost(BaseMatchCost):
    """Negative (G)IoU between boxes.

    Args:
        iou_mode (str): 'iou', 'iof' or 'giou'. Default: 'giou'.
        weight (float): Cost weight. Default: 1.
    """

    def __init__(self, iou_mode: str = 'giou', weight: float = 1.) -> None:
        super().__init__(weight=weight)
        self.iou_mode = iou_mode

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData, img_meta: Optional[dict] = None,
                 **kwargs) -> Tensor:
        """``bboxes`` of both: (n, 4) unnormalised (x1, y1, x2, y2)."""
        overlaps = bbox_overlaps(pred_instances.bboxes.float(), gt_instances.bboxes.float(), mode=self.iou_mode,
                                 is_aligned=False)
        return -overlaps * self.weight
