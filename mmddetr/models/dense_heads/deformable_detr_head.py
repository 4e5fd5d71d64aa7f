"""Box head of Deformable DETR: per-decoder-layer class and box branches, focal + L1 + GIoU set losses."""
import copy
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.dense_heads import DETRHead
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmdet.utils import InstanceList
from mmengine.model import bias_init_with_prob, constant_init
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmddetr.models.layers import refine_boxes
from mmddetr.registry import MODELS


@MODELS.register_module()
class DeformableDETRHead(DETRHead):
    """Class ``Linear`` and box ``MLP`` (``num_reg_fcs`` hidden layers) per decoder layer.

    Boxes are predicted relative to each layer's reference in logit space, ``sigmoid(delta + inverse_sigmoid(ref))``
    (:func:`~mmddetr.models.layers.refine_boxes`; only the centre moves for a point reference). The losses
    (Hungarian matching, focal classification, L1 and GIoU, auxiliary losses for every layer) come from mmdet's
    ``DETRHead``; two-stage adds the encoder proposal loss on all targets relabelled to class 0 (``enc_loss_*``). The
    detector sets the three arguments below. Predictions name the query of each detection (``queries``).

    Args:
        share_pred_layer (bool): One branch pair shared by all layers (no box refinement). Default: False.
        num_pred_layer (int): Number of branch pairs: decoder layers, plus one scoring the encoder proposals in
            two-stage mode. Default: 6.
        as_two_stage (bool): Two-stage mode (all box biases start at 0). Default: False.
        *args, **kwargs: ``DETRHead``'s (``num_classes``, ``embed_dims``, ``num_reg_fcs``, losses, ``train_cfg``,
            ``test_cfg``).
    """

    def __init__(self, *args, share_pred_layer: bool = False, num_pred_layer: int = 6, as_two_stage: bool = False,
                 **kwargs) -> None:
        self.share_pred_layer = share_pred_layer
        self.num_pred_layer = num_pred_layer
        self.as_two_stage = as_two_stage
        super().__init__(*args, **kwargs)

    def _init_layers(self) -> None:
        """``cls_branches`` and ``reg_branches``, one per prediction layer (the same module when shared)."""
        fc_cls = nn.Linear(self.embed_dims, self.cls_out_channels)
        reg_layers = []
        for _ in range(self.num_reg_fcs):
            reg_layers += [nn.Linear(self.embed_dims, self.embed_dims), nn.ReLU()]
        reg_branch = nn.Sequential(*reg_layers, nn.Linear(self.embed_dims, 4))
        copies = (lambda m: m) if self.share_pred_layer else copy.deepcopy
        self.cls_branches = nn.ModuleList([copies(fc_cls) for _ in range(self.num_pred_layer)])
        self.reg_branches = nn.ModuleList([copies(reg_branch) for _ in range(self.num_pred_layer)])

    def init_weights(self) -> None:
        """Class bias at the 0.01 prior; last box layer zero with width/height bias -2 (0 in two-stage)."""
        if self.loss_cls.use_sigmoid:
            for m in self.cls_branches:
                nn.init.constant_(m.bias, bias_init_with_prob(0.01))
        for m in self.reg_branches:
            constant_init(m[-1], 0, bias=0)
        if not self.as_two_stage:
            nn.init.constant_(self.reg_branches[0][-1].bias.data[2:], -2.0)

    def forward(self, hidden_states: Tensor, references: List[Tensor]) -> Tuple[Tensor, Tensor]:
        """
        Args:
            hidden_states (Tensor): (num_decoder_layers, bs, num_queries, C).
            references (list[Tensor]): The initial reference and the one after every layer, each (bs, num_queries,
                2) points (cx, cy) or (bs, num_queries, 4) boxes (cx, cy, w, h); layer l predicts relative to
                ``references[l]``.

        Returns:
            tuple[Tensor, Tensor]: class logits (num_decoder_layers, bs, num_queries, num_classes) and boxes
            (num_decoder_layers, bs, num_queries, 4), normalised (cx, cy, w, h).
        """
        outputs = [self.forward_layer(hidden_states[i], references[i], i) for i in range(hidden_states.shape[0])]
        classes, coords = zip(*outputs)
        return torch.stack(classes), torch.stack(coords)

    def forward_layer(self, hidden_state: Tensor, reference: Tensor, layer_id: int) -> Tuple[Tensor, Tensor]:
        """Class logits (bs, num_queries, num_classes) and boxes (bs, num_queries, 4) of one decoder layer."""
        outputs_class = self.cls_branches[layer_id](hidden_state)
        return outputs_class, refine_boxes(self.reg_branches[layer_id](hidden_state), reference)

    def loss(self, hidden_states: Tensor, references: List[Tensor], enc_outputs_class: Optional[Tensor],
             enc_outputs_coord: Optional[Tensor], batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Losses of every decoder layer (``loss_cls``, ``d0.loss_cls``, ...) and, in two-stage, ``enc_loss_*``.

        Args:
            hidden_states (Tensor): (num_decoder_layers, bs, num_queries, C).
            references (list[Tensor]): See :meth:`forward`.
            enc_outputs_class (Tensor, optional): (bs, num_keys, num_classes) proposal scores (two-stage only).
            enc_outputs_coord (Tensor, optional): (bs, num_keys, 4) proposal boxes (two-stage only).
            batch_data_samples (list[DetDataSample]): Ground truth in ``gt_instances``.

        Returns:
            dict[str, Tensor]: Scalar losses.
        """
        batch_gt_instances = [s.gt_instances for s in batch_data_samples]
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        all_cls_scores, all_bbox_preds = self(hidden_states, references)
        return self.loss_by_feat(all_cls_scores, all_bbox_preds, enc_outputs_class, enc_outputs_coord,
                                 batch_gt_instances, batch_img_metas)

    def loss_by_feat(self, all_layers_cls_scores: Tensor, all_layers_bbox_preds: Tensor,
                     enc_cls_scores: Optional[Tensor], enc_bbox_preds: Optional[Tensor],
                     batch_gt_instances: InstanceList, batch_img_metas: List[dict],
                     batch_gt_instances_ignore: Optional[InstanceList] = None) -> Dict[str, Tensor]:
        """``DETRHead``'s per-layer losses plus the encoder proposal loss (class-agnostic targets)."""
        losses = super().loss_by_feat(all_layers_cls_scores, all_layers_bbox_preds, batch_gt_instances,
                                      batch_img_metas, batch_gt_instances_ignore)
        if enc_cls_scores is not None:
            proposal_gt_instances = copy.deepcopy(batch_gt_instances)
            for gt_instances in proposal_gt_instances:
                gt_instances.labels = torch.zeros_like(gt_instances.labels)
            enc_losses = self.loss_by_feat_single(enc_cls_scores, enc_bbox_preds, proposal_gt_instances,
                                                  batch_img_metas)
            losses.update(zip(('enc_loss_cls', 'enc_loss_bbox', 'enc_loss_iou'), enc_losses))
        return losses

    def forward_last_layer(self, hidden_states: Tensor, references: List[Tensor]) -> Tuple[Tensor, Tensor]:
        """Class logits (bs, num_queries, num_classes) and boxes (bs, num_queries, 4) of the last decoder layer (the
        only one evaluated); arguments as in :meth:`forward`."""
        last = hidden_states.shape[0] - 1
        return self.forward_layer(hidden_states[last], references[last], last)

    def predict(self, hidden_states: Tensor, references: List[Tensor], batch_data_samples: SampleList,
                rescale: bool = True) -> InstanceList:
        """Top-``test_cfg.max_per_img`` boxes of the last decoder layer.

        Returns:
            list[InstanceData]: per image ``scores``, ``labels``, ``bboxes`` (x1, y1, x2, y2) and ``queries``, as
            :meth:`predict_by_feat`.
        """
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        cls_scores, bbox_preds = self.forward_last_layer(hidden_states, references)
        return self.predict_by_feat(cls_scores[None], bbox_preds[None], batch_img_metas, rescale=rescale)

    def predict_by_feat(self, layer_cls_scores: Tensor, layer_bbox_preds: Tensor, batch_img_metas: List[dict],
                        rescale: bool = True) -> InstanceList:
        """mmdet's ``DETRHead.predict_by_feat``, for the whole batch at once (:meth:`top_detections`).

        Args:
            layer_cls_scores (Tensor): (num_layers, bs, num_queries, num_classes) logits; the last layer is used.
            layer_bbox_preds (Tensor): (num_layers, bs, num_queries, 4) normalised (cx, cy, w, h).
            batch_img_metas (list[dict]): ``img_shape`` of each image, and ``scale_factor`` with ``rescale``.
            rescale (bool): Boxes in the original image (divided by ``scale_factor``) rather than the network
                input. Default: True.

        Returns:
            list[InstanceData]: per image ``scores`` (k, ), ``labels`` (k, ), ``bboxes`` (k, 4) (x1, y1, x2, y2)
            and ``queries`` (k, ), the query each detection comes from; k = ``test_cfg.max_per_img``.
        """
        img_sizes = torch.tensor([meta['img_shape'][:2] for meta in batch_img_metas], device=layer_bbox_preds.device)
        scores, labels, bboxes, queries = self.top_detections(layer_cls_scores[-1], layer_bbox_preds[-1], img_sizes)
        results = []
        for img_id, img_meta in enumerate(batch_img_metas):
            img_bboxes = bboxes[img_id]
            if rescale:
                if img_meta.get('scale_factor') is None:
                    raise ValueError('rescale=True needs scale_factor in every image\'s metainfo')
                img_bboxes = self.boxes_to_original(img_bboxes, img_meta['scale_factor'])
            results.append(InstanceData(scores=scores[img_id], labels=labels[img_id], bboxes=img_bboxes,
                                        queries=queries[img_id]))
        return results

    @staticmethod
    def boxes_to_original(bboxes: Tensor, scale_factor: Tuple[float, float]) -> Tensor:
        """(k, 4) boxes (x1, y1, x2, y2) in input pixels → pixels of the original image (``scale_factor``: (w, h)
        resize factors of the test pipeline)."""
        return bboxes / bboxes.new_tensor(scale_factor).repeat((1, 2))

    def top_detections(self, cls_scores: Tensor, bbox_preds: Tensor,
                       img_sizes: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """The ``test_cfg.max_per_img`` best (query, class) pairs of each image, boxes in pixels of its valid part.

        Sigmoid scores ranked over queries x classes (softmax: each query's best foreground class); boxes
        (cx, cy, w, h) → (x1, y1, x2, y2) times the image's (w, h), clamped to it. mmdet's ``DETRHead`` formula, on
        tensors alone (no per-image metadata), so that it exports.

        Args:
            cls_scores (Tensor): (bs, num_queries, num_classes) logits (num_classes + 1 with softmax).
            bbox_preds (Tensor): (bs, num_queries, 4) normalised (cx, cy, w, h).
            img_sizes (Tensor): (bs, 2) (h, w) of each image's unpadded part, in input pixels.

        Returns:
            tuple[Tensor, Tensor, Tensor, Tensor]: scores (bs, k), labels (bs, k) int64, boxes (bs, k, 4) (x1, y1,
            x2, y2) and the query of each detection (bs, k) int64, best first.
        """
        max_per_img = self.test_cfg.get('max_per_img', cls_scores.shape[1])
        if self.loss_cls.use_sigmoid:
            # (bs, k) over queries x classes
            scores, indexes = cls_scores.sigmoid().flatten(1).topk(max_per_img, dim=1)
            labels = indexes % self.num_classes
            queries = indexes // self.num_classes
        else:
            scores, labels = F.softmax(cls_scores, dim=-1)[..., :-1].max(-1)  # (bs, num_queries)
            scores, queries = scores.topk(max_per_img, dim=1)  # (bs, k)
            labels = labels.gather(1, queries)
        boxes = bbox_cxcywh_to_xyxy(bbox_preds.gather(1, queries[..., None].expand(-1, -1, 4)))  # (bs, k, 4)
        img_wh = img_sizes.flip(-1).repeat(1, 2)[:, None].to(boxes.dtype)  # (bs, 1, 4) (w, h, w, h)
        return scores, labels, (boxes * img_wh).clamp(min=0).minimum(img_wh), queries
