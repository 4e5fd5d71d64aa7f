"""The length of an iteration-based run in training images (tools/toy_demo.py, tools/paper_tables.py)."""
import math
from typing import Optional

from mmengine.config import Config


def stretch_lr_drops(param_scheduler, config_iters: int, max_iters: int) -> None:
    """Puts each ``MultiStepLR`` milestone of a config written for ``config_iters`` iterations at the same fraction
    of a run of ``max_iters`` (the main config drops the rate x0.1 after 1,000 of its 1,200 iterations: after 5/6 of
    any run); warm-ups stay as they are."""
    for scheduler in param_scheduler if isinstance(param_scheduler, list) else [param_scheduler]:
        if scheduler['type'] == 'MultiStepLR':
            scheduler['milestones'] = [round(m * max_iters / config_iters) for m in scheduler['milestones']]
            scheduler['end'] = max_iters


def set_training_images(cfg: Config, images: int, val_every: Optional[int] = None) -> int:
    """Make ``cfg``'s ``IterBasedTrainLoop`` run see ``images`` training images: ceil(images / batch size)
    iterations, its learning-rate drops moved with it (:func:`stretch_lr_drops`); with ``val_every`` (images), a
    validation and a checkpoint every ceil(val_every / batch size) iterations (and at the last one, as mmengine's loop
    does). Returns the number of iterations."""
    batch_size = cfg.train_dataloader.batch_size
    max_iters = math.ceil(images / batch_size)
    stretch_lr_drops(cfg.param_scheduler, cfg.train_cfg.max_iters, max_iters)
    cfg.train_cfg.max_iters = max_iters
    if val_every is not None:
        cfg.train_cfg.val_interval = cfg.default_hooks.checkpoint.interval = math.ceil(val_every / batch_size)
    return max_iters
