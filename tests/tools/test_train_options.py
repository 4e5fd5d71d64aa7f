"""tools/train.py options that change the config: --auto-scale-lr."""
import os.path as osp

import pytest

from tool_runs import TOY

TOOLS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools')


def test_auto_scale_lr_scales_the_rate_to_the_total_batch(toy_options, tmp_path, monkeypatch):
    """The main config's 5e-4 is for batch 4 (x0.1 for sampling offsets); at batch 2 with --auto-scale-lr the
    optimizer gets half of each: the runner's scaling (what ``Runner.train`` applies to the optimizer it builds,
    before the schedulers) is on, and off without the option."""
    monkeypatch.syspath_prepend(TOOLS)
    import train

    from mmddetr.engine import build_runner
    for option, rates in (([], [5e-5, 5e-4]), (['--auto-scale-lr'], [2.5e-5, 2.5e-4])):
        args = train.parse_args([TOY, *option, '--work-dir', str(tmp_path / str(len(option))), '--cfg-options',
                                 *toy_options])
        runner = build_runner(train.build_config(args))
        assert runner.cfg.train_dataloader.batch_size == 2 and runner.auto_scale_lr.base_batch_size == 4
        optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
        runner.scale_lr(optim_wrapper, runner.auto_scale_lr)
        lrs = sorted({group['lr'] for group in optim_wrapper.optimizer.param_groups})
        assert lrs == pytest.approx(rates, rel=1e-9), option


def test_auto_scale_lr_needs_the_configs_batch(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(TOOLS)
    import train

    config = tmp_path / 'no_base_batch.py'
    config.write_text(f"_base_ = '{osp.abspath(TOY)}'\nauto_scale_lr = dict(_delete_=True, enable=False)\n")
    with pytest.raises(SystemExit) as stop:
        train.main([str(config), '--auto-scale-lr', '--work-dir', str(tmp_path / 'work')])
    assert stop.value.code == 'error: --auto-scale-lr needs auto_scale_lr.base_batch_size in the config'
    assert not (tmp_path / 'work').exists()  # stopped before anything was written
