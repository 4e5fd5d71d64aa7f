"""tools/train.py and tools/test.py at small scale: train, resume, test, AMP, guards and messages."""
import glob
import math
import os
import os.path as osp
import pickle

import torch

from tool_runs import TOY, assert_same_weights, check_ok, load_checkpoint


def test_missing_coco_stops_with_where_and_toy_config(run_tool, tmp_path):
    # the paper config on a data root that is never there, whether or not this machine has data/coco/
    nowhere = f'{tmp_path}/coco/'
    for tool, args in (('train.py', ['configs/deformable_detr_r50.py']),
                       ('test.py', ['configs/deformable_detr_r50.py', __file__])):
        proc = run_tool(tool, *args, '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                        *(f'{split}_dataloader.dataset.data_root={nowhere}' for split in ('train', 'val', 'test')))
        assert proc.returncode == 1
        assert f'{nowhere}annotations/instances_' in proc.stderr and TOY in proc.stderr
        assert 'Traceback' not in proc.stderr


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(run_tool, toy_options, tmp_path):
    # augmentation runs in a data worker (as in our configs): its seeded stream replays when resume skips batches
    toy_options = toy_options + ['train_dataloader.num_workers=1', 'train_cfg.max_iters=4']
    full, resumed = str(tmp_path / 'full'), str(tmp_path / 'resumed')
    # --resume in a work dir without checkpoints starts afresh
    proc = check_ok(run_tool('train.py', TOY, '--work-dir', full, '--resume', '--cfg-options', *toy_options))
    assert 'resumed' not in proc.stdout + proc.stderr and osp.isfile(osp.join(full, 'iter_4.pth'))
    # --resume CKPT continues from that file (the uninterrupted run's iter_2.pth, as if it had stopped there), here
    # into another work dir
    proc = check_ok(run_tool('train.py', TOY, '--work-dir', resumed, '--resume', osp.join(full, 'iter_2.pth'),
                             '--cfg-options', *toy_options))
    assert 'resumed epoch: 0, iter: 2' in proc.stdout + proc.stderr
    a, b = load_checkpoint(osp.join(full, 'iter_4.pth')), load_checkpoint(osp.join(resumed, 'iter_4.pth'))
    assert a['meta']['iter'] == b['meta']['iter'] == 4
    assert_same_weights(a, b)
    # a new run into the same work dir is refused: the earlier checkpoints stay
    proc = run_tool('train.py', TOY, '--work-dir', resumed, '--cfg-options', *toy_options)
    assert proc.returncode == 1 and 'holds checkpoints of an earlier run' in proc.stderr


# tools/test.py --show with this matplotlib backend: each window's image saved as SHOWN_DIR/<window title>.npy
# (there is no display here)
SHOW_RECORDER = '''
import os
import numpy as np
from matplotlib.backend_bases import FigureManagerBase
from matplotlib.backends.backend_agg import FigureCanvasAgg


class FigureManager(FigureManagerBase):
    def show(self):
        image = np.asarray(self.canvas.figure.axes[0].images[0].get_array())
        np.save(os.path.join(os.environ['SHOWN_DIR'], self.get_window_title()), image)


class FigureCanvas(FigureCanvasAgg):
    manager_class = FigureManager
'''

# A hook saving the weights of the first validation and test iteration as <work_dir>/{val_<iter>,test}_weights.pt
RECORD_WEIGHTS = '''
import os.path as osp
import torch
from mmengine.hooks import Hook
from mmddetr.registry import HOOKS


@HOOKS.register_module()
class RecordWeightsHook(Hook):
    def before_val_iter(self, runner, batch_idx, data_batch=None):
        if batch_idx == 0:
            torch.save(runner.model.state_dict(), osp.join(runner.work_dir, f'val_{runner.iter}_weights.pt'))

    def before_test_iter(self, runner, batch_idx, data_batch=None):
        if batch_idx == 0:
            torch.save(runner.model.state_dict(), osp.join(runner.work_dir, 'test_weights.pt'))
'''


def test_test_tool_evaluates_dumps_shows_and_draws_the_averaged_weights(run_tool, toy_options, tmp_path):
    """The main toy config's EMAHook: validation, the checkpoint's state_dict and tools/test.py hold the averaged
    weights, its ema_state_dict the trained ones. tools/test.py prints the AP table, --out pickles, --show shows and
    --show-dir draws each image."""
    import mmcv
    import numpy as np
    (tmp_path / 'record_weights_hook.py').write_text(RECORD_WEIGHTS)
    (tmp_path / 'show_recorder.py').write_text(SHOW_RECORDER)
    config = tmp_path / 'toy_recording_weights.py'
    config.write_text(f"_base_ = '{osp.abspath(TOY)}'\n"
                      "custom_imports = dict(imports=['mmddetr', 'record_weights_hook'], allow_failed_imports=False)\n"
                      "custom_hooks = _base_.custom_hooks + [dict(type='RecordWeightsHook')]\n")
    env = dict(PYTHONPATH=os.pathsep.join(filter(None, (str(tmp_path), os.environ.get('PYTHONPATH')))))
    work = tmp_path / 'train'
    check_ok(run_tool('train.py', str(config), '--work-dir', str(work), '--cfg-options', *toy_options,
                      'train_cfg.max_iters=2', env=env))
    checkpoint = load_checkpoint(str(work / 'iter_2.pth'))
    averaged = checkpoint['state_dict']
    trained = {k[len('module.'):]: v for k, v in checkpoint['ema_state_dict'].items() if k.startswith('module.')}
    assert averaged.keys() == trained.keys() and any(not torch.equal(averaged[k], trained[k]) for k in averaged)

    out, shown = str(tmp_path / 'results.pkl'), tmp_path / 'shown'
    shown.mkdir()
    proc = check_ok(run_tool('test.py', str(config), str(work / 'iter_2.pth'), '--work-dir', str(tmp_path / 'test'),
                             '--out', out, '--show', '--wait-time', '0.01', '--show-dir', 'vis', '--cfg-options',
                             *toy_options, env=dict(env, MPLBACKEND='module://show_recorder', SHOWN_DIR=str(shown))))
    assert 'coco/bbox_mAP' in proc.stdout + proc.stderr
    for evaluated in (work / 'val_2_weights.pt', tmp_path / 'test' / 'test_weights.pt'):
        weights = torch.load(str(evaluated), weights_only=True)
        assert weights.keys() == averaged.keys()
        assert all(torch.equal(weights[k], v) for k, v in averaged.items()), evaluated
    with open(out, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == 8 and results[0]['pred_instances']['bboxes'].shape[1] == 4
    drawn = sorted(glob.glob(str(tmp_path / 'test' / '*' / 'vis' / '*.png')))
    assert sorted(p.name for p in shown.iterdir()) == [osp.basename(p) + '.npy' for p in drawn] and len(drawn) == 8
    for path in drawn:  # the window shows the drawing --show-dir writes
        window = np.load(str(shown / (osp.basename(path) + '.npy')))
        assert np.array_equal(window, mmcv.imread(path, channel_order='rgb')), path


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


def test_tensorboard_gets_losses_and_val_metrics(run_tool, toy_options, tmp_path):
    """tools/install.sh installs tensorboard, so train.py writes TensorBoard event files: the loss and learning rate
    of every logged iteration and the validation mAP, as TensorBoard reads them back."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    check_ok(run_tool('train.py', TOY, '--work-dir', str(tmp_path), '--cfg-options', *toy_options,
                      'train_cfg.max_iters=2'))
    events = glob.glob(str(tmp_path / '*' / 'vis_data' / 'events.out.tfevents.*'))
    assert len(events) == 1
    logged = EventAccumulator(events[0]).Reload()
    assert {'loss', 'lr', 'coco/bbox_mAP'} <= set(logged.Tags()['scalars']), logged.Tags()['scalars']
    for tag, steps in (('loss', [1, 2]), ('lr', [1, 2]), ('coco/bbox_mAP', [2])):
        assert [e.step for e in logged.Scalars(tag)] == steps, tag
        assert all(math.isfinite(e.value) and e.value >= 0 for e in logged.Scalars(tag)), tag
    assert all(e.value > 0 for e in logged.Scalars('loss'))


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
