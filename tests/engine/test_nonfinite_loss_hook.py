"""NonFiniteLossHook: a NaN or inf loss (or matching cost) never reaches the weights. The step raises naming the
iteration and the terms, or is skipped with a warning (action='skip'); distributed ranks decide together."""
import gc
import json
import re
from types import SimpleNamespace

import pytest
import torch
from mmengine.model import BaseModel
from toy_configs import MAIN_TOY

HINT = "(default_hooks.nonfinite_loss.action='skip' skips such steps)"


@pytest.fixture
def toy_training(build_detector, det_batch):
    """Factory: ``make(action)`` → (model, optim_wrapper, data, hook, runner): the toy detector on two small images,
    its ``train_step`` wrapped by ``NonFiniteLossHook(action)`` at iteration 37 of the log (runner.iter 36)."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    from mmddetr.engine import NonFiniteLossHook

    def make(action='raise'):
        model = build_detector(MAIN_TOY, cfg_options={'model.encoder.num_layers': 1, 'model.decoder.num_layers': 2})
        optim_wrapper = build_optim_wrapper(model, Config.fromfile(MAIN_TOY).optim_wrapper)
        inputs, samples = det_batch(sizes=((64, 96), (80, 64)), num_gts=(2, 1), num_classes=5)
        images = [inputs[i, :, :h, :w] for i, (h, w) in enumerate(s.img_shape for s in samples)]
        model.train()
        hook, runner = NonFiniteLossHook(action), SimpleNamespace(model=model, iter=36)
        hook.before_train(runner)
        return model, optim_wrapper, dict(inputs=images, data_samples=samples), hook, runner

    return make


def _nan_box_loss(model):
    return model.bbox_head.loss_bbox.register_forward_hook(lambda module, args, output: output * float('nan'))


def _state(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _unchanged(model, before, optim_wrapper):
    same = all(torch.equal(p, before[name]) for name, p in model.named_parameters())
    return same and not optim_wrapper.optimizer.state  # AdamW never stepped


def test_nan_loss_raises_naming_iteration_and_terms(toy_training):
    model, optim_wrapper, data, _, _ = toy_training()
    before = _state(model)
    _nan_box_loss(model)
    terms = 'loss_bbox=nan, d0.loss_bbox=nan, enc_loss_bbox=nan'
    with pytest.raises(FloatingPointError, match=re.escape(
            f'non-finite loss at iteration 37: {terms}; the weights were not updated {HINT}')):
        model.train_step(data, optim_wrapper)
    assert _unchanged(model, before, optim_wrapper)


def test_skip_leaves_the_weights_and_training_goes_on(toy_training, logged_warnings):
    model, optim_wrapper, data, hook, runner = toy_training('skip')
    before = _state(model)
    handle = _nan_box_loss(model)
    assert model.train_step(data, optim_wrapper) == {}
    assert _unchanged(model, before, optim_wrapper) and hook.skipped_steps == 1
    assert logged_warnings == ['non-finite loss at iteration 37: loss_bbox=nan, d0.loss_bbox=nan, enc_loss_bbox=nan; '
                               'the weights were not updated; step skipped (1 so far)']
    handle.remove()
    runner.iter = 37
    log_vars = model.train_step(data, optim_wrapper)
    assert all(torch.isfinite(v) for v in log_vars.values()) and 'loss_bbox' in log_vars
    assert not _unchanged(model, before, optim_wrapper)
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize('action', ['raise', 'skip'])
def test_nonfinite_targets_stop_in_the_assigner_before_the_weights(action, toy_training, logged_warnings):
    model, optim_wrapper, data, _, _ = toy_training(action)
    before = _state(model)
    data['data_samples'][1].gt_instances.bboxes[0, 2] = float('inf')
    message = ("non-finite values in the forward pass at iteration 37: HungarianAssigner: the matching costs "
               "['BBoxL1Cost', 'IoUCost'] have NaN or inf entries")
    if action == 'raise':
        with pytest.raises(FloatingPointError, match=re.escape(message)) as error:
            model.train_step(data, optim_wrapper)
        assert str(error.value).endswith(f'; the weights were not updated {HINT}')
    else:
        assert model.train_step(data, optim_wrapper) == {}
        assert logged_warnings[0].startswith(message) and logged_warnings[0].endswith('; step skipped (1 so far)')
    assert _unchanged(model, before, optim_wrapper)


class _Linear(BaseModel):
    """One layer: ``loss_l1`` = |Wx + b|, a list-valued ``loss_parts`` (as mmdet's multi-level losses) and a
    ``mean`` logged but not optimised."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='loss'):
        out = self.linear(inputs)
        return dict(loss_l1=out.abs().mean(), loss_parts=[out.mean() * 0, out.sum() * 0], mean=out.mean().detach())


def _raise_in_backward(*args):
    raise FloatingPointError('in backward')


def _train_steps(model, action, poisoned, steps=3):
    """Steps at iterations 1..steps of ``model`` (the runner's model) with ``NonFiniteLossHook(action)``: NaN inputs
    at the iterations in ``poisoned``. Returns each step's logged names, or the error that ended the run, the
    hook's skip count and the weights."""
    from mmengine.optim import OptimWrapper

    from mmddetr.engine import NonFiniteLossHook

    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    hook, runner = NonFiniteLossHook(action), SimpleNamespace(model=model, iter=0)
    hook.before_train(runner)
    outcomes = []
    for iteration in range(steps):
        runner.iter = iteration
        inputs = torch.full((4, 2), float('nan') if iteration + 1 in poisoned else 1.0)
        try:
            outcomes.append(sorted(model.train_step(dict(inputs=inputs), optim_wrapper)))
        except FloatingPointError as error:
            outcomes.append(str(error))
            break
    hook.after_train(runner)
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    return dict(outcomes=outcomes, skipped=hook.skipped_steps, weights=weights.tolist())


def test_every_logged_term_is_checked_and_later_errors_pass_unchanged():
    torch.manual_seed(0)
    logged = ['loss', 'loss_l1', 'loss_parts', 'mean']
    result = _train_steps(_Linear(), 'skip', poisoned={2})
    assert result['outcomes'] == [logged, [], logged] and result['skipped'] == 1
    result = _train_steps(_Linear(), 'raise', poisoned={2})
    assert result['outcomes'] == [logged, 'non-finite loss at iteration 2: loss_l1=nan, loss_parts=nan, mean=nan; the '
                                          f'weights were not updated {HINT}']

    model = _Linear()
    model.linear.weight.register_hook(_raise_in_backward)  # the weights may have changed: not a skip
    assert _train_steps(model, 'skip', poisoned=set())['outcomes'] == ['in backward']


def test_the_wrapper_is_in_place_only_while_training():
    from mmddetr.engine import NonFiniteLossHook

    model, compiled = _Linear(), lambda data, optim_wrapper: {}
    hook, runner = NonFiniteLossHook(), SimpleNamespace(model=model, iter=0)
    hook.before_train(runner)
    assert model.train_step.__name__ == 'checked_train_step'
    hook.after_train(runner)
    assert 'train_step' not in vars(model)  # mmengine's BaseModel.train_step again
    model.train_step = compiled  # as mmengine's cfg.compile leaves it
    hook.before_train(runner)
    hook.after_train(runner)
    assert model.train_step is compiled


def test_the_configs_register_the_hook_and_the_action_is_checked():
    from mmengine.config import Config

    from mmddetr.engine import NonFiniteLossHook

    for config in ('configs/deformable_detr_r50.py', MAIN_TOY):
        assert Config.fromfile(config).default_hooks.nonfinite_loss == dict(type='NonFiniteLossHook', action='raise')
    with pytest.raises(ValueError, match="default_hooks.nonfinite_loss.action must be 'raise' or 'skip', got 'ignore'"):
        NonFiniteLossHook('ignore')


def _ddp_rank(rank, out_dir):
    """One of two gloo ranks: the ``_train_steps`` of a DDP-wrapped ``_Linear`` per action, NaN on rank 1 only. The
    ranks meet in a file store under ``out_dir`` (no network port to pick)."""
    import datetime

    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel

    dist.init_process_group('gloo', init_method=f'file://{out_dir}/store', rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=60))
    results = {}
    for action in ('skip', 'raise'):
        torch.manual_seed(0)
        results[action] = _train_steps(MMDistributedDataParallel(_Linear(), device_ids=None), action,
                                       poisoned={2} if rank == 1 else set())
        # DDP's reducer goes while the group lives on: had it held the group's last reference, its destructor would
        # end the group holding the GIL while a gloo thread waits for the GIL (a deadlock seen on a loaded machine)
        gc.collect()
    with open(f'{out_dir}/rank_{rank}.json', 'w') as f:
        json.dump(results, f)
    dist.destroy_process_group()


def test_distributed_ranks_skip_or_raise_together(tmp_path, spawn_ranks):
    # had rank 1 alone skipped or raised, rank 0 would wait in DDP's gradient all-reduce (here: 60 s, then fail)
    spawn_ranks(_ddp_rank, (str(tmp_path), ))
    ranks = [json.loads((tmp_path / f'rank_{rank}.json').read_text()) for rank in (0, 1)]
    logged = ['loss', 'loss_l1', 'loss_parts', 'mean']
    for rank in ranks:
        assert rank['skip']['outcomes'] == [logged, [], logged] and rank['skip']['skipped'] == 1
    assert ranks[0]['skip']['weights'] == ranks[1]['skip']['weights']  # both trained at iterations 1 and 3 only
    assert torch.tensor(ranks[0]['skip']['weights']).isfinite().all()
    assert ranks[0]['raise']['outcomes'] == [
        logged, f'non-finite loss at iteration 2 on rank 1; the weights were not updated {HINT}']
    assert ranks[1]['raise']['outcomes'] == [
        logged, 'non-finite loss at iteration 2 on rank 1: loss_l1=nan, loss_parts=nan, mean=nan; the weights were '
                f'not updated {HINT}']
