"""tools/benchmark_memory.py at small scale: per-window RSS lines, the growth and a verdict."""
import re

from conftest import TOY


def test_benchmark_memory_prints_windows_growth_and_verdict(run_tool, toy_options, tmp_path):
    options = [o for o in toy_options if o.startswith(('train_dataloader.', 'model.', 'randomness.'))]
    proc = run_tool('benchmark_memory.py', '--config', TOY, '--iters', '6', '--every', '2', '--start', '2',
                    '--threshold-mb', '1e6', '--work-dir', str(tmp_path), '--cfg-options', *options,
                    'train_dataloader.num_workers=1')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    windows = re.findall(r'RSS  iter +(\d+)-(\d+) +main +([\d.]+) MB  workers +([\d.]+) MB \((\d+)\)', proc.stdout)
    assert [(int(a), int(b)) for a, b, *_ in windows] == [(1, 2), (3, 4), (5, 6)]
    assert all(float(main) > 100 and float(workers) > 0 and int(n) == 1 for *_, main, workers, n in windows)
    summary = proc.stdout.strip().splitlines()[-1]  # from the first printed window at or after --start
    assert re.fullmatch(r'peak resident memory, iterations 3-4 -> 5-6: main [\d.]+ -> [\d.]+ MB \([-+][\d.]+ MB\), '
                        r'workers .*; verdict: flat \(main process growth below 1e\+06 MB\)', summary), summary
