"""Real toy training runs whose box loss turns NaN in iteration 3 (NonFiniteLossHook, default_hooks.nonfinite_loss):
the run stops naming the iteration and the terms with no checkpoint after it, or (action='skip') skips that step and
trains on, with finite weights, in float32 and under --amp."""
import os
import os.path as osp
import re

import pytest
import torch

from tool_runs import TOY

HOOK = '''import math

from mmengine.hooks import Hook

from mmddetr.registry import HOOKS


@HOOKS.register_module()
class NaNBoxLossHook(Hook):
    """Multiplies the box loss by NaN in iteration ``at`` (counted from 1, as the log does)."""

    def __init__(self, at):
        self.at, self.handle = at, None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.at:
            self.handle = runner.model.bbox_head.loss_bbox.register_forward_hook(lambda m, a, out: out * math.nan)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
'''


@pytest.fixture
def poisoned_config(tmp_path, monkeypatch):
    """The toy config with ``NaNBoxLossHook(at=3)`` and no validation (seconds matter here)."""
    (tmp_path / 'nan_box_loss_hook.py').write_text(HOOK)
    monkeypatch.setenv('PYTHONPATH', os.pathsep.join(filter(None, [str(tmp_path), os.environ.get('PYTHONPATH')])))
    config = tmp_path / 'poisoned.py'
    config.write_text(f"_base_ = '{osp.abspath(TOY)}'\n"
                      "custom_imports = dict(imports=['mmddetr', 'nan_box_loss_hook'], allow_failed_imports=False)\n"
                      "custom_hooks = [dict(type='RNGStateHook'), dict(type='NaNBoxLossHook', at=3)]\n"
                      'val_dataloader = None\nval_cfg = None\nval_evaluator = None\n')
    return str(config)


def _train(run_tool, config, work_dir, toy_options, *options):
    train_options = [o for o in toy_options if not o.startswith(('val_', 'test_', 'train_cfg.val'))]
    return run_tool('train.py', config, '--work-dir', work_dir, '--cfg-options', *train_options,
                    'train_cfg.max_iters=4', *options)


def _weights(path):
    from mmddetr.engine import mmengine_checkpoint_globals
    with mmengine_checkpoint_globals():
        return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


@pytest.mark.slow
def test_nan_loss_stops_the_run_before_a_checkpoint(run_tool, toy_options, poisoned_config, tmp_path):
    work_dir = str(tmp_path / 'work')
    proc = _train(run_tool, poisoned_config, work_dir, toy_options)
    assert proc.returncode != 0
    assert ('FloatingPointError: non-finite loss at iteration 3: loss_bbox=nan, d0.loss_bbox=nan, enc_loss_bbox=nan; '
            "the weights were not updated (default_hooks.nonfinite_loss.action='skip' skips such steps)") in proc.stderr
    assert sorted(f for f in os.listdir(work_dir) if f.endswith('.pth')) == ['iter_2.pth']
    assert all(torch.isfinite(v).all() for v in _weights(osp.join(work_dir, 'iter_2.pth')).values())


@pytest.mark.slow
@pytest.mark.parametrize('amp', [False, True], ids=['fp32', 'amp'])
def test_skip_mode_skips_the_step_and_trains_on(run_tool, toy_options, poisoned_config, tmp_path, amp):
    work_dir = str(tmp_path / 'work')
    proc = _train(run_tool, poisoned_config, work_dir, toy_options, 'default_hooks.nonfinite_loss.action=skip',
                  *(['--amp'] if amp else []))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert ('non-finite loss at iteration 3: loss_bbox=nan, d0.loss_bbox=nan, enc_loss_bbox=nan; the weights were '
            'not updated; step skipped (1 so far)') in log
    at_2, at_4 = _weights(osp.join(work_dir, 'iter_2.pth')), _weights(osp.join(work_dir, 'iter_4.pth'))
    assert all(torch.isfinite(v).all() for v in at_4.values())
    assert any(not torch.equal(at_4[k], v) for k, v in at_2.items() if v.is_floating_point())  # iteration 4 trained
    assert re.search(r'Iter\(train\) \[4/4\].* loss: \d+\.\d+ ', log)  # iteration 4's loss is logged, finite
