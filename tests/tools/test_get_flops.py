"""tools/get_flops.py on a toy config at a small --shape: the groups, our op's share, the groups adding up to the
printed totals; a bad --shape or a missing config is named."""
import re

from tool_runs import TOY, check_ok

GROUP = re.compile(r'(backbone|neck|encoder|decoder|head|total) +([\d.]+)M +([\d.]+) +([\d.]+)(?:  (.*))?')


def test_get_flops_prints_groups_that_add_up(run_tool):
    stdout = check_ok(run_tool('get_flops.py', TOY, '--shape', '96', '128')).stdout
    lines = stdout.splitlines()
    assert lines[1] == f'Config: {TOY}' and lines[2].startswith('Input shape: (96, 128)'), stdout
    rows = {m.group(1): m for m in map(GROUP.fullmatch, lines) if m}
    assert list(rows) == ['backbone', 'neck', 'encoder', 'decoder', 'head', 'total'], stdout
    assert rows['head'].group(5) == 'bbox_head, proposal_head' and rows['total'].group(5) is None
    for column in (2, 3, 4):  # params (M), GFLOPs, the op's GFLOPs; each printed to 2 decimals
        parts = sum(float(rows[g].group(column)) for g in ('backbone', 'neck', 'encoder', 'decoder', 'head'))
        assert abs(parts - float(rows['total'].group(column))) <= 0.03, (column, stdout)
    total_flops, op_flops = float(rows['total'].group(3)), float(rows['total'].group(4))
    assert op_flops > 0
    share = re.search(r'^Flops: ([\d.]+)G \(ms_deform_attn ([\d.]+)G, ([\d.]+)%\)$', stdout, re.M)
    assert share and float(share.group(1)) == total_flops and float(share.group(2)) == op_flops, stdout
    assert re.search(r'^Params: [\d.]+M$', stdout, re.M), stdout


def test_get_flops_names_a_bad_shape(run_tool):
    proc = run_tool('get_flops.py', TOY, '--shape', '0', '128')
    assert proc.returncode == 2
    assert 'error: --shape: expected a positive height and width, got 0 128' in proc.stderr
    proc = run_tool('get_flops.py', TOY, '--shape', '96')
    assert proc.returncode == 2 and 'argument --shape: expected 2 arguments' in proc.stderr


def test_get_flops_names_a_missing_config(run_tool):
    proc = run_tool('get_flops.py', 'configs/no_such_config.py')
    assert proc.returncode == 2
    assert 'error: config: No such file or directory: configs/no_such_config.py' in proc.stderr
