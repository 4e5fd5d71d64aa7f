"""tools/benchmark_memory.py at small scale: per-window RSS lines, the growth and a verdict that holds at a threshold
a leak fails."""
import os
import re
import subprocess
import sys

from conftest import TOY, check_ok

# Growth still called flat. The main process's window peaks of the short toy run below swing by up to 60 MB
# (2026-12-05, 2-core CPU VM: 3-4 -> 5-6 growth of -35, -5 and +59 MB in three runs); the leak adds 256.
THRESHOLD_MB = 128
LEAK_MB = 128  # per iteration

# python -c LEAKY tools/benchmark_memory.py ARGS...: the benchmark with a hook that keeps LEAK_MB more per iteration
LEAKY = f'''
import runpy, sys
from mmengine.hooks import Hook
import mmddetr.engine

class Leak(Hook):
    kept = []
    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.kept.append(bytearray(b'1') * ({LEAK_MB} << 20))  # written, so resident

build_runner = mmddetr.engine.build_runner
def leaky_build_runner(cfg):
    runner = build_runner(cfg)
    runner.register_hook(Leak())
    return runner

mmddetr.engine.build_runner = leaky_build_runner
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def _benchmark(toy_options, tmp_path, leaky=False):
    """The benchmark's output: 6 toy iterations, windows of 2, growth from iterations 3-4 to 5-6."""
    options = [o for o in toy_options if o.startswith(('train_dataloader.', 'model.', 'randomness.'))]
    args = ['tools/benchmark_memory.py', '--config', TOY, '--iters', '6', '--every', '2', '--start', '2',
            '--threshold-mb', str(THRESHOLD_MB), '--work-dir', str(tmp_path), '--cfg-options', *options,
            'train_dataloader.num_workers=1']
    command = [sys.executable, *(['-c', LEAKY] if leaky else []), *args]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    return check_ok(proc).stdout


def _growth(summary):
    match = re.fullmatch(r'peak resident memory, iterations 3-4 -> 5-6: main [\d.]+ -> [\d.]+ MB \(([-+][\d.]+) MB\), '
                         rf'workers .*; verdict: (flat|GROWING) \(main process growth below {THRESHOLD_MB} MB\)',
                         summary)
    assert match, summary
    return float(match.group(1)), match.group(2)


def test_benchmark_memory_prints_windows_and_training_stays_flat(toy_options, tmp_path):
    stdout = _benchmark(toy_options, tmp_path)
    windows = re.findall(r'RSS  iter +(\d+)-(\d+) +main +([\d.]+) MB  workers +([\d.]+) MB \((\d+)\)', stdout)
    assert [(int(a), int(b)) for a, b, *_ in windows] == [(1, 2), (3, 4), (5, 6)]
    assert all(float(main) > 100 and float(workers) > 0 and int(n) == 1 for *_, main, workers, n in windows)
    growth, verdict = _growth(stdout.strip().splitlines()[-1])  # from the first printed window at or after --start
    assert verdict == 'flat', growth


def test_benchmark_memory_calls_a_leak_growing(toy_options, tmp_path):
    growth, verdict = _growth(_benchmark(toy_options, tmp_path, leaky=True).strip().splitlines()[-1])
    assert verdict == 'GROWING', growth
