"""load_from a checkpoint with another class count: everything else loads, the class layers keep their fresh init
and every skipped key is named (the common fine-tuning case; mmengine's Runner loads load_from non-strictly)."""
import logging
import math

import torch
from mmengine.logging import MMLogger
from mmengine.runner import load_checkpoint, save_checkpoint

TOY = 'configs/toy/deformable_detr_r18_toy_refine_twostage.py'


def test_other_class_count_loads_the_rest(build_detector, tmp_path):
    source = build_detector(TOY)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(0.5)
    path = str(tmp_path / 'five_classes.pth')
    save_checkpoint(dict(state_dict=source.state_dict(), meta=dict()), path)
    target = build_detector(TOY, cfg_options={'model.bbox_head.num_classes': 3})
    logger = MMLogger.get_instance('finetune_test')
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger.addHandler(handler)
    load_checkpoint(target, path, strict=False, logger=logger)
    skipped = {k for k, v in source.state_dict().items() if v.shape != target.state_dict()[k].shape}
    assert skipped == {f'bbox_head.cls_branches.{i}.{p}' for i in range(4) for p in ('weight', 'bias')}
    report = '\n'.join(messages)
    assert all(key in report for key in skipped)
    for key, value in target.state_dict().items():
        if key not in skipped:
            assert torch.equal(value, source.state_dict()[key]), key
    for branch in target.bbox_head.cls_branches:
        torch.testing.assert_close(branch.bias, torch.full((3, ), -math.log(99)))
