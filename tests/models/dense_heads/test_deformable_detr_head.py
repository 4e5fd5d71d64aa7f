"""DeformableDETRHead.top_detections names the query of each detection: its score, label and box are that query's."""
import pytest
import torch
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy

from toy_configs import PLAIN_TOY


@pytest.mark.parametrize('sigmoid', [True, False])
def test_each_detection_is_its_querys_score_label_and_box(build_detector, sigmoid):
    loss_cls = dict(_delete_=True, type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)
    options = {} if sigmoid else {'model.bbox_head.loss_cls': loss_cls}
    head = build_detector(PLAIN_TOY, cfg_options=options).bbox_head
    assert head.loss_cls.use_sigmoid == sigmoid
    gen = torch.Generator().manual_seed(0)
    cls_scores = torch.randn(2, 100, head.cls_out_channels, generator=gen)
    bbox_preds = torch.rand(2, 100, 4, generator=gen) * 0.5 + 0.25
    img_sizes = torch.tensor([[200, 300], [150, 120]])
    scores, labels, boxes, queries = head.top_detections(cls_scores, bbox_preds, img_sizes)
    assert queries.shape == (2, 100) and queries.dtype == torch.int64
    probabilities = cls_scores.sigmoid() if sigmoid else cls_scores.softmax(-1)
    for b in range(2):
        torch.testing.assert_close(scores[b], probabilities[b, queries[b], labels[b]])
        wh = img_sizes[b].flip(0).repeat(2).float()
        expected = (bbox_cxcywh_to_xyxy(bbox_preds[b, queries[b]]) * wh).clamp(min=0).minimum(wh)
        torch.testing.assert_close(boxes[b], expected)
        if not sigmoid:  # one detection per query, its best foreground class
            assert len(set(queries[b].tolist())) == 100
            torch.testing.assert_close(scores[b], probabilities[b, queries[b], :-1].max(-1)[0])
