"""The main job at small scale: time budget, evaluation, AP table, curves, prediction images, printed paths."""
import os

from conftest import TOY


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
    for name in ('checkpoint:', 'AP table:', 'curves:', 'predictions:'):
        assert name in proc.stdout
    proc = run_tool('toy_demo.py', '--config', str(config), '--work-dir', str(work))
    assert proc.returncode != 0 and 'not empty' in proc.stderr  # nothing overwritten
