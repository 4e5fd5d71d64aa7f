"""Test (and evaluate) a checkpoint: mmdet's ``tools/test.py`` command line, on mmengine's Runner.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl] [--show] [--show-dir DIR]
                         [--cfg-options key=value ...] [--launcher none|pytorch|slurm|mpi]
"""
import argparse
import os

from mmdet.engine.hooks.utils import trigger_visualization_hook
from mmdet.evaluation import DumpDetResults
from mmengine.config import DictAction

from mmddetr.engine import (ConfigError, build_runner, check_checkpoint_weights, check_data_exists,
                            config_errors_explained, configure_tensorboard, errors_in_one_line, load_config,
                            mmengine_checkpoint_loader, read_checkpoint)

NO_DATA_HINT = ('To try everything without a download, train the toy config, which makes its own data, and test its '
                'checkpoint: python tools/train.py configs/toy/deformable_detr_r18_toy_refine_twostage.py')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', help='dump predictions to a pickle file (.pkl) for offline evaluation')
    parser.add_argument('--show', action='store_true', help='show the predictions in a window')
    parser.add_argument('--show-dir', help='save images with predictions into this dir, under the work dir')
    parser.add_argument('--wait-time', type=float, default=2, help='seconds each --show image is shown')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    with errors_in_one_line():
        if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
            raise ConfigError(f'--out: expected a .pkl or .pickle file, got {args.out}')
        cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
        configure_tensorboard(cfg, add=False)
        check_data_exists(cfg, ('test_dataloader', ), NO_DATA_HINT)
        cfg.load_from = args.checkpoint
        if args.show or args.show_dir:
            cfg = trigger_visualization_hook(cfg, args)
        with config_errors_explained(cfg), mmengine_checkpoint_loader():  # the runner's load_from
            runner = build_runner(cfg)
            runner.test_loop  # builds the dataset first, so that config errors come before checkpoint errors
            check_checkpoint_weights(runner.model, read_checkpoint(args.checkpoint), args.checkpoint)
            if args.out is not None:
                runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
            runner.test()


if __name__ == '__main__':
    main()
