"""The main job at small scale: image budget, time cap, evaluation, AP table, curves, prediction images, summary."""
import glob
import importlib.util
import json
import os
from pathlib import Path

import torch
from tool_runs import TOY, TOY_ROOT_ARGS, load_checkpoint


def _toy_demo():
    spec = importlib.util.spec_from_file_location('toy_demo', 'tools/toy_demo.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_config(tmp_path, toy_root, overrides):
    """The main job's config on the tiny toy data, batch 2, no data workers, with ``overrides`` (config lines)."""
    config = tmp_path / 'tiny_toy.py'
    config.write_text(f"""_base_ = '{os.path.abspath(TOY)}'
data_root = '{toy_root}'
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root))
val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
{overrides}
""")
    return config


def test_toy_demo_writes_everything_within_its_budget(run_tool, toy_root, tmp_path):
    config = _tiny_config(tmp_path, toy_root, """model = dict(encoder=dict(num_layers=1), decoder=dict(num_layers=2))
train_cfg = dict(val_interval=3)
default_hooks = dict(checkpoint=dict(interval=3), logger=dict(interval=1))""")
    work = tmp_path / 'demo'
    proc = run_tool('toy_demo.py', '--config', str(config), '--minutes', '0.05', '--work-dir', str(work))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert 'TimeBudgetHook' in log, log[-3000:]
    assert 'eta:' in log
    iters = int(log.split('toy val set after ')[1].split(' iterations')[0])
    assert 1 <= iters < 2400  # stopped by the time cap, not by the 4,800 images of batch 2
    assert (work / f'iter_{iters}.pth').exists() and (work / 'curves.png').stat().st_size > 0
    table = (work / 'ap_table.txt').read_text()
    assert 'mAP@[.5:.95]' in table and 'AP circle' in table
    assert len(list((work / 'predictions').glob('*.png'))) == 4
    curve = (work / 'learning_curve.txt').read_text().splitlines()
    assert all('not judged' in line for line in curve[-2:])  # far fewer than 2,400 images
    assert [int(line.split()[1]) for line in curve[1:-2]][-1] == iters  # every validation, the last one included
    assert int(curve[-3].split()[0]) == 2 * iters  # images = iterations x batch
    for name in ('checkpoint ', 'AP table ', 'curves ', 'predictions ', 'learning ', 'train longer ',
                 'test a checkpoint ', 'infer on images '):
        assert name in proc.stdout
    wrote = proc.stdout.split('wrote:\n')[1].split('next:')[0].splitlines()
    assert all(line.split()[-1].startswith(str(work)) for line in wrote)  # every path under the work dir as given
    assert f'checkpoint    {work}/iter_{iters}.pth' in wrote[0]
    proc = run_tool('toy_demo.py', '--config', str(config), '--work-dir', str(work))
    assert proc.returncode != 0 and 'not empty' in proc.stderr  # nothing overwritten


def test_toy_demo_trains_its_images_without_a_time_cap(run_tool, toy_root, tmp_path):
    config = _tiny_config(tmp_path, toy_root, """model = dict(encoder=dict(num_layers=1), decoder=dict(num_layers=1))
train_cfg = dict(val_interval=2)
default_hooks = dict(logger=dict(interval=1))""")
    work = tmp_path / 'demo'
    proc = run_tool('toy_demo.py', '--config', str(config), '--images', '7', '--work-dir', str(work))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'after 4 iterations, 8 images' in proc.stdout  # ceil(7 / 2) iterations of batch 2
    assert [line.split()[0] for line in (work / 'learning_curve.txt').read_text().splitlines()[1:3]] == ['4', '8']
    with open(glob.glob(str(work / '*' / 'vis_data' / 'scalars.json'))[0]) as f:
        lrs = [record['lr'] for record in map(json.loads, f) if 'lr' in record]
    # the config's drop after 1,000 of 1,200 iterations, moved to 3 of 4: the 4th iteration at a tenth of the 3rd,
    # times the warm-up's growth (about 1.13)
    assert len(lrs) == 4 and lrs[1] < lrs[2]
    assert 0.1 < lrs[3] / lrs[2] < 0.12


def test_the_demo_evaluates_and_draws_the_weights_its_checkpoint_holds(toy_root, tmp_path):
    """With an EMAHook the checkpoint holds the averaged weights, and the demo tests those (``runner.test()`` alone
    would rebuild the average from the trained weights and test them)."""
    from mmengine.hooks import Hook

    from mmddetr.engine import build_runner, load_config
    config = _tiny_config(tmp_path, toy_root, """model = dict(encoder=dict(num_layers=1), decoder=dict(num_layers=1))
train_cfg = dict(max_iters=3, val_interval=3)
default_hooks = dict(checkpoint=dict(interval=3))
custom_hooks = [dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.5, gamma=1, update_buffers=True)]""")
    runner = build_runner(load_config(str(config), work_dir=str(tmp_path / 'work')))
    runner.train()
    tested = {}

    class RecordTestedWeights(Hook):
        def before_test_iter(self, runner, batch_idx, data_batch=None):
            tested.update({k: v.clone() for k, v in runner.model.state_dict().items()})

    runner.register_hook(RecordTestedWeights(), priority='LOWEST')
    checkpoint = str(tmp_path / 'work' / 'iter_3.pth')
    _toy_demo().evaluate_checkpoint(runner, checkpoint)
    saved = load_checkpoint(checkpoint)
    averaged, trained = saved['state_dict'], {k[len('module.'):]: v for k, v in saved['ema_state_dict'].items()}
    assert any(not torch.equal(averaged[k], trained[k]) for k in averaged)  # the average is not the trained weights
    for key, value in averaged.items():
        assert torch.equal(tested[key], value), key
        assert torch.equal(runner.model.state_dict()[key], value), key  # drawn after the test


def test_learning_curve_judges_the_targets_by_images_seen(tmp_path):
    learning_curve = _toy_demo().learning_curve
    history = [(300, 4.9, {'coco/bbox_mAP': 0.31, 'coco/bbox_mAP_50': 0.5}),
               (600, 9.9, {'coco/bbox_mAP': 0.46, 'coco/bbox_mAP_50': 0.61})]
    text = learning_curve(history, 8, str(tmp_path / 'a.txt'))
    lines = text.splitlines()
    assert lines[1].split()[:2] == ['2400', '300'] and (tmp_path / 'a.txt').read_text() == text
    assert lines[-2].startswith('target after 2,400 images') and lines[-2].endswith('met')
    assert 'NOT' not in lines[-2] and lines[-1].endswith('at 4,800 images (9.9 min), met')
    history[1][2]['coco/bbox_mAP_50'] = 0.59  # mAP enough, AP50 not
    assert learning_curve(history, 8, str(tmp_path / 'b.txt')).splitlines()[-1].endswith('NOT met')
    history[0] = (299, 4.9, {'coco/bbox_mAP': 0.31, 'coco/bbox_mAP_50': 0.5})  # validated just before 2,400
    lines = learning_curve(history, 8, str(tmp_path / 'c.txt')).splitlines()
    assert lines[-2].endswith('at 2,392 images (4.9 min), met')
    text = learning_curve(history[:1], 8, str(tmp_path / 'd.txt'))  # stopped before 4,800 images
    assert text.splitlines()[-1].endswith('not judged, trained 2,392 images')


def test_make_toy_dataset_writes_both_splits_as_the_library_makes_them(toy_root, tmp_path):
    """``tools/make_toy_dataset.py TOY_ROOT_ARGS`` (the ``toy_root`` fixture): both splits, byte for byte the files
    the library function writes for the same arguments."""
    from mmddetr.datasets import make_toy_dataset
    args = {name[2:].replace('-', '_'): int(value) for name, value in zip(TOY_ROOT_ARGS[::2], TOY_ROOT_ARGS[1::2])}
    make_toy_dataset(str(tmp_path) + '/', **args)
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob('*') if p.is_file())
    assert sorted(str(p.relative_to(toy_root)) for p in Path(toy_root).rglob('*') if p.is_file()) == files
    folders = [name.split('/')[0] for name in files]
    assert folders.count('train') == args['num_train'] and folders.count('val') == args['num_val']
    assert {'annotations/instances_train.json', 'annotations/instances_val.json'} <= set(files)
    for name in files:
        assert (Path(toy_root) / name).read_bytes() == (tmp_path / name).read_bytes(), name
