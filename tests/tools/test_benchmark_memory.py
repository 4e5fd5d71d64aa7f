"""tools/benchmark_memory.py at small scale: per-window RSS lines, the growth and its verdict; training stays flat
against the size of the process, and a leak is called GROWING at a threshold that the same run without it stays
below."""
import os
import re
import subprocess
import sys

from tool_runs import TOY, check_ok

# Tolerances are fractions of the main process's resident memory measured in the run, not megabytes fitted to one
# machine: the window peaks of the short toy run below swing by up to 8% of it (-35, -5 and +59 MB of 720 MB in three
# runs, 2026-12-05, 2-core CPU VM).
FLAT_FRACTION = 0.15  # largest growth, either way, of the run without a leak
LEAK_FRACTION = 0.25  # what the leaky run keeps per iteration

# python -c LEAKY tools/benchmark_memory.py ARGS...: the benchmark with a hook that keeps leak_mb more per iteration
LEAKY = '''
import runpy, sys
from mmengine.hooks import Hook
import mmddetr.engine

class Leak(Hook):
    kept = []
    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.kept.append(bytearray(b'1') * ({leak_mb} << 20))  # written, so resident

build_runner = mmddetr.engine.build_runner
def leaky_build_runner(cfg):
    runner = build_runner(cfg)
    runner.register_hook(Leak())
    return runner

mmddetr.engine.build_runner = leaky_build_runner
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def _benchmark(toy_options, work_dir, threshold_mb, leak_mb=0):
    """The benchmark's output: 6 toy iterations, windows of 2, growth from iterations 3-4 to 5-6."""
    options = [o for o in toy_options if o.startswith(('train_dataloader.', 'model.', 'randomness.'))]
    args = ['tools/benchmark_memory.py', '--config', TOY, '--iters', '6', '--every', '2', '--start', '2',
            '--threshold-mb', str(threshold_mb), '--work-dir', str(work_dir), '--cfg-options', *options,
            'train_dataloader.num_workers=1']
    command = [sys.executable, *(['-c', LEAKY.format(leak_mb=leak_mb)] if leak_mb else []), *args]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    return check_ok(proc).stdout


def _summary(stdout, threshold_mb):
    """(main process peak at iterations 3-4 in MB, its growth to 5-6, verdict) from the last line."""
    summary = stdout.strip().splitlines()[-1]  # from the first printed window at or after --start
    match = re.fullmatch(r'peak resident memory, iterations 3-4 -> 5-6: main ([\d.]+) -> [\d.]+ MB '
                         r'\(([-+][\d.]+) MB\), workers .*; verdict: (flat|GROWING) '
                         rf'\(main process growth below {threshold_mb:g} MB\)', summary)
    assert match, summary
    return float(match.group(1)), float(match.group(2)), match.group(3)


def test_benchmark_memory_calls_training_flat_and_a_leak_growing(toy_options, tmp_path):
    stdout = _benchmark(toy_options, tmp_path / 'flat', threshold_mb=32)  # the tool's default threshold
    windows = re.findall(r'RSS  iter +(\d+)-(\d+) +main +([\d.]+) MB  workers +([\d.]+) MB \((\d+)\)', stdout)
    assert [(int(a), int(b)) for a, b, *_ in windows] == [(1, 2), (3, 4), (5, 6)]
    assert all(float(main) > 100 and float(workers) > 0 and int(n) == 1 for *_, main, workers, n in windows)
    main, growth, verdict = _summary(stdout, 32)
    assert verdict == ('flat' if growth < 32 else 'GROWING')
    assert abs(growth) < FLAT_FRACTION * main, (growth, main)
    # neither validation nor a checkpoint (the config's would come at the last iteration)
    files = [p for p in (tmp_path / 'flat').rglob('*') if p.is_file()]
    logs = [p.read_text() for p in files if p.suffix == '.log']
    assert len(logs) == 1 and 'Iter(val)' not in logs[0] and 'bbox_mAP' not in logs[0]
    assert not [p for p in files if p.suffix == '.pth'] and 'Saving checkpoint' not in logs[0]

    # the leak, and the threshold it must exceed, scale with the process measured: half the leak above the growth of
    # the run without it
    leak_mb = round(LEAK_FRACTION * main)
    threshold_mb = max(growth, 0) + leak_mb
    leaky_main, leaky_growth, verdict = _summary(
        _benchmark(toy_options, tmp_path / 'leaky', threshold_mb, leak_mb=leak_mb), threshold_mb)
    assert verdict == 'GROWING', (leaky_growth, threshold_mb)
    assert abs(leaky_growth - 2 * leak_mb) < 2 * FLAT_FRACTION * main, (leaky_growth, leak_mb)  # kept at 5 and 6
