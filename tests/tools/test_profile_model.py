"""tools/profile_model.py (docs/benchmarks.md) at a tiny shape: one profiled training iteration of the toy config
prints the per-component table, well-formed, with every part of the step and adding up to the iteration's time."""
import re

from tool_runs import TOY, check_ok

STEP_PARTS = ('backbone', 'neck (input projections)', 'encoder projections, FFN, norms', 'encoder attention op',
              'decoder (all but its attention op)', 'decoder attention op', 'two-stage proposal head', 'matching',
              'losses', 'data pipeline', 'optimizer step')


def test_profile_model_prints_a_table_that_adds_up(run_tool, toy_options):
    proc = check_ok(run_tool('profile_model.py', TOY, '--iters', '1', '--threads', '1', '--cfg-options', *toy_options))
    out = proc.stdout
    table_head = '| component (forward + backward) | ms / iter | share |\n|---|---:|---:|\n'
    header = re.search(rf'^{re.escape(TOY)}: (\d+) ms per training iteration under the profiler, 1 threads, '
                       r'1 iterations\n' + re.escape(table_head), out, re.MULTILINE)
    assert header, out[-3000:]
    wall_ms = int(header.group(1))
    table = out[header.end():].strip().splitlines()
    rows = [re.fullmatch(r'\| (.+) \| (-?\d+) \| (-?\d+\.\d)% \|', line) for line in table]
    assert all(rows), table
    rows = {row.group(1): (int(row.group(2)), float(row.group(3))) for row in rows}
    assert len(rows) == len(table) and list(rows)[-1] == 'other (Python, waiting)'
    assert set(STEP_PARTS) <= set(rows), rows
    # 'other' (the wall time no operator accounts for) included: no operator time is charged twice
    assert all(ms >= 0 for ms, _ in rows.values()), rows
    # the attention op is charged by where it ran: both the encoder's and the decoder's get their share
    assert rows['encoder attention op'][0] > 0 and rows['decoder attention op'][0] > 0 and rows['backbone'][0] > 0
    # the rows add up to the iteration (each rounded to 1 ms), the shares to 100%
    assert abs(sum(ms for ms, _ in rows.values()) - wall_ms) <= 0.5 * (len(rows) + 1)
    assert abs(sum(share for _, share in rows.values()) - 100) <= 0.05 * len(rows)
