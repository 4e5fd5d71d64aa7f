"""``load_from`` and ``--resume CKPT`` in tools/train.py: a checkpoint missing weights of the model stops training with
one line, unless a partial load is asked for, as does one that cannot be read; a checkpoint with another class count
fine-tunes (its class layers skipped)."""
import math
import os.path as osp

import torch
from mmengine.runner import save_checkpoint

from tool_runs import TOY, check_ok, load_checkpoint

RUN = 'deformable_detr_r18_toy_refine_twostage_20260101_000000'  # the run that saved the checkpoint (its meta)
PARTIAL = 'default_hooks.checkpoint_weights.allow_missing=True'


def _options(toy_options):
    """One iteration at learning rate 0 (the weights after it are the ones loaded) without validation."""
    return toy_options + ['train_cfg.max_iters=1', 'optim_wrapper.optimizer.lr=0', 'val_dataloader=None',
                          'val_cfg=None', 'val_evaluator=None']


def _source(build_detector, path, drop='', **cfg_options):
    """A toy detector shaped as ``toy_options`` makes it, its parameters moved off their initialisation, saved to
    ``path`` without the weights whose names start with ``drop``; returns its state dict (all weights) and the names
    of the weights that one training step at learning rate 0 leaves as they are (all but batch-norm statistics)."""
    model = build_detector(TOY, cfg_options={'model.encoder.num_layers': 1, 'model.decoder.num_layers': 2,
                                             **cfg_options})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    state = model.state_dict()
    kept = {k: v for k, v in state.items() if not (drop and k.startswith(drop))}
    save_checkpoint(dict(state_dict=kept, meta=dict(experiment_name=RUN)), path)
    return state, [k for k in state if not k.endswith(('running_mean', 'running_var', 'num_batches_tracked'))]


def test_checkpoint_missing_weights_stops_training_unless_partial(run_tool, toy_options, build_detector, tmp_path):
    path = str(tmp_path / 'no_decoder.pth')
    state, fixed = _source(build_detector, path, drop='decoder.')
    missing = [k for k in state if k.startswith('decoder.')]
    options = _options(toy_options) + [f'load_from={path}']

    work = str(tmp_path / 'strict')
    proc = run_tool('train.py', TOY, '--work-dir', work, '--cfg-options', *options)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    message = (f"error: checkpoint {path}: {len(missing)} of the model's {len(state)} weights are missing (first: "
               f"{', '.join(missing[:5])}); it was saved by the run '{RUN}'. Is it a checkpoint of this config? To "
               f'load it partially: --cfg-options {PARTIAL}\n')
    assert proc.stderr.endswith(message), proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr and not osp.exists(osp.join(work, 'iter_1.pth'))
    proc = run_tool('train.py', TOY, '--work-dir', work, '--resume', path, '--cfg-options', *_options(toy_options))
    assert proc.returncode == 1 and proc.stderr.endswith(message), proc.stderr[-3000:]

    work = str(tmp_path / 'partial')
    proc = check_ok(run_tool('train.py', TOY, '--work-dir', work, '--cfg-options', *options, PARTIAL))
    assert f'{len(missing)} of the model\'s {len(state)} weights are missing' in proc.stdout + proc.stderr
    trained = load_checkpoint(osp.join(work, 'iter_1.pth'))['state_dict']
    for name in fixed:  # the checkpoint's weights loaded, the missing ones kept their init
        assert torch.equal(trained[name], state[name]) != name.startswith('decoder.'), name


def test_unreadable_or_absent_checkpoint_stops_training_with_one_line(run_tool, toy_options, tmp_path):
    cut = tmp_path / 'cut.pth'
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, str(cut))
    cut.write_bytes(cut.read_bytes()[:200])
    absent = tmp_path / 'absent.pth'
    for path, reason, loaded_by in ((cut, 'cannot be read', [f'load_from={cut}']),
                                    (absent, 'no such file', ['--resume', str(absent)])):
        proc = run_tool('train.py', TOY, '--work-dir', str(tmp_path / path.stem), '--cfg-options',
                        *_options(toy_options), *loaded_by)
        assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
        assert proc.stderr.splitlines()[-1].startswith(f'error: checkpoint {path}: {reason}'), proc.stderr[-3000:]


def test_finetune_with_another_class_count_through_load_from(run_tool, toy_options, build_detector, tmp_path):
    path = str(tmp_path / 'three_classes.pth')
    state, fixed = _source(build_detector, path, **{'model.bbox_head.num_classes': 3})
    work = str(tmp_path / 'finetune')
    proc = check_ok(run_tool('train.py', TOY, '--work-dir', work, '--cfg-options', *_options(toy_options),
                             f'load_from={path}'))
    trained = load_checkpoint(osp.join(work, 'iter_1.pth'))['state_dict']
    skipped = {k for k, v in state.items() if v.shape != trained[k].shape}
    assert skipped == {f'bbox_head.cls_branches.{i}.{p}' for i in range(3) for p in ('weight', 'bias')}
    log = proc.stdout + proc.stderr
    assert all(f'size mismatch for {key}' in log for key in skipped)
    for name in fixed:
        if name in skipped:  # the five-class layers keep their initialisation
            assert trained[name].shape[0] == 5, name
            if name.endswith('bias'):
                torch.testing.assert_close(trained[name], torch.full((5, ), -math.log(99)))
        else:
            assert torch.equal(trained[name], state[name]), name
