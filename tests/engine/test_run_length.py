"""A run's length in training images: iterations, learning-rate drops and validations follow it."""
from mmengine.config import Config

from mmddetr.engine import set_training_images, stretch_lr_drops
from toy_configs import MAIN_TOY


def test_stretch_lr_drops_keeps_their_fraction_of_the_run():
    warmup = dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50)
    schedulers = [dict(warmup), dict(type='MultiStepLR', milestones=[1000, 1100], gamma=0.1, by_epoch=False, end=1200)]
    stretch_lr_drops(schedulers, 1200, 2400)
    assert schedulers == [warmup, dict(type='MultiStepLR', milestones=[2000, 2200], gamma=0.1, by_epoch=False,
                                       end=2400)]
    single = dict(type='MultiStepLR', milestones=[3], by_epoch=False, end=4)
    stretch_lr_drops(single, 4, 8)  # a config's single scheduler (not a list)
    assert single['milestones'] == [6] and single['end'] == 8


def test_set_training_images_sets_iterations_drops_and_validations_from_images():
    cfg = Config.fromfile(MAIN_TOY)  # batch 4, 1,200 iterations, x0.1 after 1,000, validation every 300
    assert set_training_images(cfg, 9601, val_every=1200) == 2401  # ceil(9,601 / 4)
    assert cfg.train_cfg.max_iters == 2401
    [drop] = [s for s in cfg.param_scheduler if s['type'] == 'MultiStepLR']
    assert drop['milestones'] == [round(1000 * 2401 / 1200)] and drop['end'] == 2401
    assert cfg.train_cfg.val_interval == cfg.default_hooks.checkpoint.interval == 300
    assert set_training_images(cfg, 10, val_every=6) == 3  # 6 images: every 2 iterations of 4
    assert cfg.train_cfg.val_interval == 2
    interval = cfg.default_hooks.checkpoint.interval
    set_training_images(cfg, 40)  # without val_every: the validations as they were
    assert cfg.train_cfg.max_iters == 10 and cfg.train_cfg.val_interval == 2 == interval
