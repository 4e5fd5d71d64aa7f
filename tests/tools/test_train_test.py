"""tools/train.py and tools/test.py at small scale: train, resume, test, AMP, guards and messages."""
import glob
import math
import os.path as osp
import pickle

import pytest
import torch

from conftest import TOY, assert_same_weights, check_ok, load_checkpoint


def test_missing_coco_stops_with_where_and_toy_config(run_tool, tmp_path):
    for tool, args in (('train.py', ['configs/deformable_detr_r50.py']),
                       ('test.py', ['configs/deformable_detr_r50.py', __file__])):
        proc = run_tool(tool, *args, '--work-dir', str(tmp_path), '--cfg-options', 'data_root=nowhere/')
        assert proc.returncode == 1
        assert 'data/coco/annotations/instances_' in proc.stderr and TOY in proc.stderr
        assert 'Traceback' not in proc.stderr


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(run_tool, toy_options, tmp_path):
    # augmentation runs in a data worker (as in our configs): its seeded stream replays when resume skips batches
    toy_options = toy_options + ['train_dataloader.num_workers=1']
    full, split = str(tmp_path / 'full'), str(tmp_path / 'split')
    check_ok(run_tool('train.py', TOY, '--work-dir', full, '--cfg-options', *toy_options, 'train_cfg.max_iters=4'))
    check_ok(run_tool('train.py', TOY, '--work-dir', split, '--cfg-options', *toy_options, 'train_cfg.max_iters=2'))
    proc = check_ok(run_tool('train.py', TOY, '--work-dir', split, '--resume', '--cfg-options', *toy_options,
                           'train_cfg.max_iters=4'))
    assert 'resumed' in proc.stdout + proc.stderr
    a, b = load_checkpoint(osp.join(full, 'iter_4.pth')), load_checkpoint(osp.join(split, 'iter_4.pth'))
    assert a['meta']['iter'] == b['meta']['iter'] == 4
    assert_same_weights(a, b)
    # a new run into the same work dir is refused: the earlier checkpoints stay
    proc = run_tool('train.py', TOY, '--work-dir', split, '--cfg-options', *toy_options)
    assert proc.returncode == 1 and 'holds checkpoints of an earlier run' in proc.stderr


def test_test_tool_evaluates_dumps_and_draws(run_tool, toy_options, tmp_path):
    work = str(tmp_path / 'train')
    check_ok(run_tool('train.py', TOY, '--work-dir', work, '--cfg-options', *toy_options, 'train_cfg.max_iters=2'))
    out = str(tmp_path / 'results.pkl')
    proc = check_ok(run_tool('test.py', TOY, osp.join(work, 'iter_2.pth'), '--work-dir', str(tmp_path / 'test'),
                           '--out', out, '--show-dir', 'vis', '--cfg-options', *toy_options))
    assert 'coco/bbox_mAP' in proc.stdout + proc.stderr
    with open(out, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == 8 and results[0]['pred_instances']['bboxes'].shape[1] == 4
    assert len(glob.glob(str(tmp_path / 'test' / '*' / 'vis' / '*.png'))) == 8


def test_amp_on_cpu_trains_in_bfloat16_and_stays_finite(toy_options, tmp_path, monkeypatch):
    """train.py --amp on CPU: the training forward passes compute in bfloat16 (Linear outputs in the encoder's
    attention and in the head), validation and the weights stay float32, and the losses are finite."""
    monkeypatch.syspath_prepend(osp.join(osp.dirname(__file__), '..', '..', 'tools'))
    import train

    from mmddetr.engine import build_runner
    args = train.parse_args([TOY, '--amp', '--work-dir', str(tmp_path), '--cfg-options', *toy_options,
                             'train_cfg.max_iters=1'])
    runner = build_runner(train.build_config(args))
    model = runner.model
    layers = [model.encoder.layers[0].self_attn.value_proj, model.bbox_head.cls_branches[0]]
    dtypes = {True: set(), False: set()}  # model.training -> output dtypes seen
    for layer in layers:
        layer.register_forward_hook(lambda module, args, output: dtypes[module.training].add(output.dtype))
    runner.train()
    assert type(runner.optim_wrapper).__name__ == 'AutocastOptimWrapper'
    assert dtypes == {True: {torch.bfloat16}, False: {torch.float32}}  # the training step, then the final validation
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    loss = runner.message_hub.get_scalar('train/loss')
    assert len(loss.data[0]) == 1 and all(math.isfinite(v) for v in loss.data[0])


def test_tensorboard_gets_losses_and_val_metrics_when_installed(run_tool, toy_options, tmp_path):
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    check_ok(run_tool('train.py', TOY, '--work-dir', str(tmp_path), '--cfg-options', *toy_options,
                      'train_cfg.max_iters=2'))
    events = glob.glob(str(tmp_path / '*' / 'vis_data' / 'events.out.tfevents.*'))
    assert len(events) == 1
    scalars = EventAccumulator(events[0]).Reload().Tags()['scalars']
    assert {'loss', 'lr', 'coco/bbox_mAP'} <= set(scalars), scalars


def test_tensorboard_backend_follows_whether_tensorboard_is_installed(monkeypatch):
    """Added for training when installed; when absent, nothing is added and a backend the config names (e.g. a
    config dumped by a run on a machine that had it) is dropped with a warning instead of failing mid-run."""
    from mmengine.config import Config

    from mmddetr.engine import configure_tensorboard, launch

    def backends(names):
        return Config(dict(visualizer=dict(type='DetLocalVisualizer', vis_backends=[dict(type=n) for n in names])))

    with monkeypatch.context() as m:
        m.setattr(launch.importlib.util, 'find_spec', lambda name: None)
        cfg = backends(['LocalVisBackend'])
        configure_tensorboard(cfg)
        assert [b['type'] for b in cfg.visualizer.vis_backends] == ['LocalVisBackend']
        cfg = backends(['LocalVisBackend', 'TensorboardVisBackend'])
        configure_tensorboard(cfg, add=False)
        assert [b['type'] for b in cfg.visualizer.vis_backends] == ['LocalVisBackend']
    with monkeypatch.context() as m:
        m.setattr(launch.importlib.util, 'find_spec', lambda name: object())  # installed
        cfg = backends(['LocalVisBackend'])
        configure_tensorboard(cfg)
        configure_tensorboard(cfg)
        assert [b['type'] for b in cfg.visualizer.vis_backends] == ['LocalVisBackend', 'TensorboardVisBackend']
        cfg = backends(['LocalVisBackend'])
        configure_tensorboard(cfg, add=False)
        assert [b['type'] for b in cfg.visualizer.vis_backends] == ['LocalVisBackend']
