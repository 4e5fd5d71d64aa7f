"""Train a detector: mmdet's ``tools/train.py`` command line, on mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CHECKPOINT]] [--amp] [--auto-scale-lr]
                          [--cfg-options key=value ...] [--launcher none|pytorch|slurm|mpi]
"""
import argparse
import glob
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from mmddetr.engine import (ConfigError, build_runner, check_data_exists, config_errors_explained,
                            configure_tensorboard, errors_in_one_line, latest_checkpoint, load_config,
                            mmengine_checkpoint_loader, setup_amp)

NO_DATA_HINT = ('To try everything without a download, run the toy config, which makes its own data: '
                'python tools/train.py configs/toy/deformable_detr_r18_toy_refine_twostage.py')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and checkpoints (default: work_dirs/<config name>)')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: float16 on CUDA (dynamic loss scale), bfloat16 on CPU')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by total batch / auto_scale_lr.base_batch_size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CHECKPOINT, or from the latest checkpoint in the work dir if none is given')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (e.g. train_dataloader.batch_size=4)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_config(args: argparse.Namespace) -> Config:
    """The config as the command line asks for it."""
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    configure_tensorboard(cfg)
    if args.amp:
        setup_amp(cfg)
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ConfigError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':  # the newest complete checkpoint; none: a fresh start, as mmengine does
        cfg.load_from = latest_checkpoint(cfg.work_dir)
        cfg.resume = cfg.load_from is not None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def check_fresh_work_dir(cfg: Config) -> None:
    """A new (not resumed) run must not overwrite the checkpoints of an earlier one."""
    earlier = sorted(glob.glob(osp.join(cfg.work_dir, '*.pth')))
    if earlier and not cfg.get('resume', False):
        names = ', '.join(osp.basename(p) for p in earlier[:3]) + (', ...' if len(earlier) > 3 else '')
        raise FileExistsError(f'work dir {cfg.work_dir} holds checkpoints of an earlier run ({names}); pass '
                              f'--resume to continue it, or --work-dir for a new run')


def main(argv=None) -> Runner:
    args = parse_args(argv)
    with errors_in_one_line():
        cfg = build_config(args)
        check_data_exists(cfg, ('train_dataloader', 'val_dataloader'), NO_DATA_HINT)
        check_fresh_work_dir(cfg)
        with config_errors_explained(cfg), mmengine_checkpoint_loader():  # load_from, --resume
            runner = build_runner(cfg)
            runner.train()
    return runner


if __name__ == '__main__':
    main()
