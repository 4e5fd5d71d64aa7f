"""tools/benchmark_op.py at tiny levels: every row of the ours-vs-mmcv table measured, printed and written to JSON, with
consistent ratios and no verdicts (the targets are for the default levels)."""
import json
import math
import re

from tool_runs import check_ok

ROW = re.compile(r'(encoder|decoder) +(forward|forward\+backward) +([\d.]+) +([\d.]+) +([\d.]+)x +([\d.]+) +([\d.]+) +'
                 r'([\d.]+) *')


def test_benchmark_op_smoke_run(run_tool, tmp_path):
    out = tmp_path / 'op.json'
    stdout = check_ok(run_tool('benchmark_op.py', '--levels', '6x8,3x4', '--repeat', '1', '--threads', '1', '--json',
                               str(out))).stdout
    lines = stdout.splitlines()
    assert lines[0].startswith('mmddetr op: kernels for cpu; CPU kernel: ') and lines[0].endswith('; levels 6x8, 3x4')
    printed = [ROW.fullmatch(line) for line in lines[3:]]
    assert len(lines) == 7 and all(printed), stdout
    results = json.loads(out.read_text())
    assert results['levels'] == [[6, 8], [3, 4]] and results['dtype'] == 'fp32' and results['cuda_kernel_rows'] == []
    rows = results['rows']
    assert [(row['shape'], row['mode']) for row in rows] == [
        (shape, mode) for shape in ('encoder', 'decoder') for mode in ('forward', 'forward+backward')]
    for row, match in zip(rows, printed):
        assert (row['shape'], row['mode']) == match.group(1, 2)
        assert row['ours_seconds'] > 0 and row['mmcv_seconds'] > 0
        assert row['ours_peak_mb'] >= 0 and row['mmcv_peak_mb'] >= 0
        assert math.isclose(row['speedup'], row['mmcv_seconds'] / row['ours_seconds'])
        assert math.isclose(row['memory_ratio'], row['ours_peak_mb'] / max(row['mmcv_peak_mb'], 1e-9))
        columns = ('ours_seconds', 'mmcv_seconds', 'speedup', 'ours_peak_mb', 'mmcv_peak_mb', 'memory_ratio')
        scales = (1e3, 1e3, 1, 1, 1, 1)  # the table prints milliseconds
        for column, scale, text in zip(columns, scales, match.groups()[2:]):
            assert abs(float(text) - row[column] * scale) <= 0.05 + 1e-9, (column, text, row[column])


def test_benchmark_op_rejects_bad_levels(run_tool):
    proc = run_tool('benchmark_op.py', '--levels', '6x8,3')
    assert proc.returncode == 2
    assert "argument --levels: expected levels as HxW,HxW,... of positive sizes, got '6x8,3'" in proc.stderr
