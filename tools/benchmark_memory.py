"""Resident memory over a long training run: does it stay flat?

    python tools/benchmark_memory.py [--config CONFIG] [--iters 500] [--every 25] [--start 50] [--threshold-mb 32]
                                     [--work-dir DIR] [--cfg-options key=value ...]

Trains the config (default: the toy refine + two-stage one, whose data is made under data/toy on first use; its
``--cfg-options`` applied) for ``--iters`` iterations without validation or checkpoints, samples the resident set
size (RSS, from /proc: Linux only) of the main process and of its dataloader workers after every iteration, prints
the largest of every ``--every`` iterations, then the growth of that peak from the window at iteration ``--start``
to the last window and a verdict: flat when the main process grew by less than ``--threshold-mb``.
"""
import argparse
import os
import os.path as osp
import time
from typing import List

from mmengine.config import DictAction
from mmengine.hooks import Hook

from mmddetr.engine import build_runner, load_config

TOY = 'configs/toy/deformable_detr_r18_toy_refine_twostage.py'
PAGE = os.sysconf('SC_PAGE_SIZE')


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` in MB (0 if it has ended)."""
    try:
        with open(f'/proc/{pid}/statm') as f:
            return int(f.read().split()[1]) * PAGE / 2**20
    except OSError:
        return 0.0


def children(pid: int) -> List[int]:
    """Processes whose parent is ``pid`` (the dataloader workers)."""
    found = []
    for entry in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{entry}/stat') as f:
                parent = int(f.read().rsplit(')', 1)[1].split()[1])  # the name, in parentheses, may hold spaces
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found.append(int(entry))
    return found


class ResidentMemoryHook(Hook):
    """Samples the RSS of this process and of its workers after every iteration; prints the largest of each
    ``every`` iterations (single samples swing by tens of MB as the allocator takes and returns memory)."""

    priority = 'LOWEST'

    def __init__(self, every: int) -> None:
        self.every = every
        self.samples = []  # (iteration, main MB, workers MB)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        iteration, workers = runner.iter + 1, children(os.getpid())
        self.samples.append((iteration, rss_mb(os.getpid()), sum(map(rss_mb, workers))))
        if iteration % self.every == 0 or iteration == runner.max_iters:
            window = self.samples[-self.every:]
            print(f'RSS  iter {window[0][0]:>6}-{iteration:<6}  main {max(s[1] for s in window):8.1f} MB  '
                  f'workers {max(s[2] for s in window):8.1f} MB ({len(workers)})', flush=True)


def report(samples: list, start: int, window: int, threshold_mb: float) -> str:
    """Growth of the largest RSS in a window of iterations, from the first printed window starting at or after
    ``start`` (the first window if the run is shorter) to the last window."""
    first = -(-(start - 1) // window) * window + 1  # windows are 1..window, window+1..2*window, ...
    base = [s for s in samples if first <= s[0] < first + window] or samples[:window]
    end = samples[-window:]
    (main0, workers0), (main1, workers1) = [(max(s[1] for s in w), max(s[2] for s in w)) for w in (base, end)]
    verdict = 'flat' if main1 - main0 < threshold_mb else 'GROWING'
    return (f'peak resident memory, iterations {base[0][0]}-{base[-1][0]} -> {end[0][0]}-{end[-1][0]}: main '
            f'{main0:.1f} -> {main1:.1f} MB ({main1 - main0:+.1f} MB), workers {workers0:.1f} -> {workers1:.1f} MB '
            f'({workers1 - workers0:+.1f} MB); verdict: {verdict} (main process growth below {threshold_mb:g} MB)')


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', default=TOY)
    parser.add_argument('--iters', type=int, default=500, help='training iterations')
    parser.add_argument('--every', type=int, default=25, help='iterations per printed (peak) RSS window')
    parser.add_argument('--start', type=int, default=50, help='iteration the growth is measured from (warm-up)')
    parser.add_argument('--threshold-mb', type=float, default=32, help='largest growth still called flat')
    parser.add_argument('--work-dir', help='logs (default: work_dirs/benchmark_memory_<time>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    args = parser.parse_args(argv)
    work_dir = args.work_dir or osp.join('work_dirs', time.strftime('benchmark_memory_%Y%m%d_%H%M%S'))
    cfg = load_config(args.config, args.cfg_options, work_dir=work_dir)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=args.iters)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = None
    runner = build_runner(cfg)
    hook = ResidentMemoryHook(args.every)
    runner.register_hook(hook)
    runner.train()
    summary = report(hook.samples, args.start, args.every, args.threshold_mb)
    print(summary)
    return summary


if __name__ == '__main__':
    main()
