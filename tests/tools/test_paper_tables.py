"""tools/paper_tables.py --quick: the runs, the page and its PNG; a second run trains nothing, an unfinished run resumes
from its checkpoint, a row short of its seeds says so, and nothing the tool did not write is overwritten."""
import glob
import importlib.util
import json
import os
import re

import pytest
from tool_runs import check_ok

from mmddetr.paper import MARKER, QUICK_BUDGET, read_run, run_dir


def _sessions(root):
    """Every mmengine session (timestamped log dir) of every run under ``root``."""
    return sorted(glob.glob(str(root / '*' / '2*' / 'vis_data' / 'scalars.json')))


def test_quick_tables_train_once_resume_and_overwrite_only_their_page(run_tool, tmp_path):
    root, out = tmp_path / 'runs', tmp_path / 'pages' / 'paper.md'
    png = tmp_path / 'pages' / 'paper_curves.png'
    args = ['--quick', '--work-dir', str(root), '--out', str(out), '--seeds', '0', '--only', 'two_stage', 'detr']
    proc = check_ok(run_tool('paper_tables.py', *args))
    images, detr_images = QUICK_BUDGET['images'], QUICK_BUDGET['detr_images']
    two_stage, detr = run_dir(str(root), 'two_stage', 0, images), run_dir(str(root), 'detr', 0, detr_images)
    for work_dir in (two_stage, detr):
        assert f'{os.path.basename(work_dir)}: training' in proc.stdout
        assert os.path.exists(os.path.join(work_dir, 'result.json'))
    # a validation every 4 images (QUICK_BUDGET's val_every), read back from each run's own logs
    assert sorted(read_run(two_stage).history) == [4, 8] and sorted(read_run(detr).history) == [4, 8, 12]
    page = out.read_text()
    assert page.splitlines()[0] == MARKER and '**Quick mode**' in page
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and '![learning curves](paper_curves.png)' in page
    rows = {line.split(' | ')[6]: line for line in page.splitlines() if line.startswith('| ') and ' | 50 | ' in line}
    assert '| ++ two-stage | 8 | ' in rows['++ two-stage'] and rows['Deformable DETR'].endswith('| not run |')
    assert '| DETR (mmdet) | 12 | ' in page and '| DETR (mmdet), at the Deformable DETR\'s images | 8 | ' in page
    command = rf'^\d{{4}}-\d\d-\d\d \d\d:\d\d  python tools/paper_tables.py {re.escape(" ".join(args))}$'  # dated
    assert len(re.findall(command, page.split('## Commands')[1], re.MULTILINE)) == 1
    sessions = _sessions(root)
    assert len(sessions) == 2
    for split, count in (('train', 16), ('val', 8)):  # --quick's own toy data: 16 + 8 images of 96 px
        with open(root / 'quick_toy' / 'annotations' / f'instances_{split}.json') as f:
            images_of_split = json.load(f)['images']
        assert len(images_of_split) == count and {(i['height'], i['width']) for i in images_of_split} == {(96, 96)}

    proc = check_ok(run_tool('paper_tables.py', *args))  # everything finished: nothing trained again
    assert proc.stdout.count('finished earlier, skipped') == 2 and 'training' not in proc.stdout
    assert _sessions(root) == sessions
    assert page.split('## Commands')[0] in out.read_text()  # its own page rewritten, the same tables
    assert len(re.findall(command, out.read_text().split('## Commands')[1], re.MULTILINE)) == 2  # each, dated

    os.remove(os.path.join(two_stage, 'result.json'))  # killed after its checkpoint at 4 images, before the last
    os.remove(os.path.join(two_stage, 'iter_4.pth'))
    proc = check_ok(run_tool('paper_tables.py', *args[:-1]))
    assert f'(resumed from {os.path.join(two_stage, "iter_2.pth")})' in proc.stdout
    assert len(_sessions(root)) == 3 and sorted(read_run(two_stage).history) == [4, 8]
    assert os.path.exists(os.path.join(two_stage, 'result.json'))
    assert '| DETR (mmdet) | 12 | ' in out.read_text()  # --only two_stage: the page still shows every run there

    proc = check_ok(run_tool('paper_tables.py', *args[:5], '--seeds', '0', '1', '--no-train'))
    assert 'two_stage_seed1_8img: not finished, not trained (--no-train)' in proc.stdout
    assert len(_sessions(root)) == 3
    assert '| ++ two-stage | 8 | ' in out.read_text() and '| 1 | 1 of 2 seeds |' in out.read_text()

    mine = tmp_path / 'mine.md'  # a file of the user's at --out (the PNG's path: tests/test_paper.py)
    mine.write_text('my notes\n')
    proc = run_tool('paper_tables.py', *args[:3], '--out', str(mine))
    assert proc.returncode == 2 and 'error: --out' in proc.stderr and 'nothing is overwritten' in proc.stderr
    assert 'Traceback' not in proc.stderr and 'training' not in proc.stdout and mine.read_text() == 'my notes\n'
    assert not (tmp_path / 'mine_curves.png').exists()


def _paper_tables():
    spec = importlib.util.spec_from_file_location('paper_tables', 'tools/paper_tables.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_budget_defaults(capsys):
    """docs/paper.md: 1,200 images per Deformable DETR run, DETR 10x --images, a validation every 1,200, seeds 0 and 1,
    into work_dirs/paper_tables and docs/paper_training.md; --quick's budgets, in work_dirs/paper_tables_quick with
    the page there. Bad budgets stop the tool naming the option."""
    parse_args = _paper_tables().parse_args
    args = parse_args([])
    assert (args.images, args.detr_images, args.val_every, args.seeds) == (1200, 12000, 1200, [0, 1])
    assert (args.work_dir, args.out, args.png) == ('work_dirs/paper_tables', 'docs/paper_training.md',
                                                   'docs/paper_training_curves.png')
    assert parse_args(['--images', '2400']).detr_images == 24000
    args = parse_args(['--quick'])
    assert (args.images, args.detr_images, args.val_every) == (8, 12, 4)
    assert args.out == os.path.join('work_dirs/paper_tables_quick', 'paper_training.md')
    for bad, message in ((['--images', '-5'], '--images: expected a positive number of images, got -5'),
                         (['--val-every', '0'], '--val-every: expected a positive'),
                         (['--seeds', '1', '1'], '--seeds: expected distinct seeds >= 0, got 1 1'),
                         (['--only', 'dert'], 'argument --only: invalid choice: \'dert\'')):
        with pytest.raises(SystemExit):
            parse_args(bad)
        assert message in capsys.readouterr().err


def test_the_committed_page_is_the_tools_at_its_defaults():
    """docs/paper.md: docs/paper_training.md (and its PNG) is the page the tool wrote at its defaults, with every run of
    every model and seed finished."""
    from mmddetr.paper import MODELS, Budget, planned_runs
    args = _paper_tables().parse_args([])
    with open(args.out) as f:
        page = f.read()
    assert page.startswith(MARKER + '\n') and os.path.isfile(args.png)
    assert (f'Asked: {args.images:,} training images per Deformable DETR run, {args.detr_images:,} per DETR run, '
            f'seeds {", ".join(map(str, args.seeds))}.') in page
    budget = Budget(args.images, args.detr_images, args.val_every, tuple(args.seeds))
    runs = planned_runs(list(MODELS), budget)
    assert len(runs) == 16
    for model, seed, images in runs:
        row = next(line for line in page.splitlines() if line.startswith(f'| {model.key}, seed {seed} |'))
        assert f'| {images:,} of {images:,} |' in row and '| not yet |' not in row, row
