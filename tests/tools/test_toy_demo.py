"""The main job at small scale: time budget, evaluation, AP table, curves, prediction images, printed paths."""
import importlib.util
import os

from conftest import TOY


def _toy_demo():
    spec = importlib.util.spec_from_file_location('toy_demo', 'tools/toy_demo.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_toy_demo_writes_everything_within_its_budget(run_tool, toy_root, tmp_path):
    config = tmp_path / 'tiny_toy.py'
    config.write_text(f"""_base_ = '{os.path.abspath(TOY)}'
data_root = '{toy_root}'
model = dict(encoder=dict(num_layers=1), decoder=dict(num_layers=2))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root))
val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(val_interval=3)
default_hooks = dict(checkpoint=dict(interval=3), logger=dict(interval=1))
""")
    work = tmp_path / 'demo'
    proc = run_tool('toy_demo.py', '--config', str(config), '--minutes', '0.05', '--work-dir', str(work))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert 'TimeBudgetHook' in log, log[-3000:]
    assert 'eta:' in log
    iters = int(log.split('toy val set after ')[1].split(' iterations')[0])
    assert 1 <= iters < 4000  # stopped by the budget, not max_iters
    assert (work / f'iter_{iters}.pth').exists() and (work / 'curves.png').stat().st_size > 0
    table = (work / 'ap_table.txt').read_text()
    assert 'mAP@[.5:.95]' in table and 'AP circle' in table
    assert len(list((work / 'predictions').glob('*.png'))) == 4
    curve = (work / 'learning_curve.txt').read_text().splitlines()
    assert curve[-1].startswith('learning target') and 'not judged' in curve[-1]  # far less than 10 minutes
    assert [int(line.split()[0]) for line in curve[1:-1]][-1] == iters  # every validation, the last one included
    for name in ('checkpoint:', 'AP table:', 'curves:', 'predictions:', 'learning:'):
        assert name in proc.stdout
    proc = run_tool('toy_demo.py', '--config', str(config), '--work-dir', str(work))
    assert proc.returncode != 0 and 'not empty' in proc.stderr  # nothing overwritten


def test_learning_curve_judges_the_target_at_ten_minutes(tmp_path):
    learning_curve = _toy_demo().learning_curve
    history = [(100, 4.9, {'coco/bbox_mAP': 0.10}), (200, 9.9, {'coco/bbox_mAP': 0.31}),
               (300, 14.8, {'coco/bbox_mAP': 0.45})]
    text = learning_curve(history, str(tmp_path / 'a.txt'))
    assert text.splitlines()[-1].endswith('0.310, met') and (tmp_path / 'a.txt').read_text() == text
    history[1] = (200, 10.3, {'coco/bbox_mAP': 0.31})  # reached only after 10 minutes
    assert learning_curve(history, str(tmp_path / 'b.txt')).splitlines()[-1].endswith('0.100, NOT met')
