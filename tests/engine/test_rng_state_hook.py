"""RNGStateHook (docs/tools.md): generator states travel with the checkpoints, so a resumed run draws what the
uninterrupted one drew, and validation leaves the training generators where they were. A real mmengine Runner trains
a model whose dropout draws from torch's generator."""
import itertools

import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

from mmddetr.engine import RNGStateHook, mmengine_checkpoint_loader


class Points(Dataset):

    def __init__(self):
        gen = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(16, 8, generator=gen), torch.randn(16, 1, generator=gen)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], data_samples=self.y[i])


class DropoutRegression(BaseModel):

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.Dropout(0.5), nn.Linear(32, 1))
        gen = torch.Generator().manual_seed(1)  # the same start in every run, whatever the global generator's state
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.net(torch.stack(inputs))
        if mode == 'loss':
            return dict(loss=((out - torch.stack(data_samples)) ** 2).mean())
        return list(out)


class Count(BaseMetric):

    def process(self, data_batch, data_samples):
        self.results.extend(data_samples)

    def compute_metrics(self, results):
        return dict(count=len(results))


RUNS = itertools.count()  # runners made within a second would otherwise share mmengine's logger and message hub


def _run(work_dir, max_iters, hooks, val_interval=100, resume=False):
    loader = dict(dataset=Points(), sampler=dict(type='DefaultSampler', shuffle=True), batch_size=4, num_workers=0)
    runner = Runner(
        model=DropoutRegression(), work_dir=str(work_dir), train_dataloader=loader,
        val_dataloader=dict(loader, sampler=dict(type='DefaultSampler', shuffle=False)), val_evaluator=[Count()],
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=val_interval), val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)), custom_hooks=hooks, randomness=dict(seed=0),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False), logger=None),
        resume=resume, default_scope='mmddetr', experiment_name=f'rng_state_{next(RUNS)}')
    with mmengine_checkpoint_loader():  # resume reads the message hub and the generator states weights-only
        runner.train()
    return runner


def test_a_resumed_run_draws_the_dropout_masks_of_the_uninterrupted_one(tmp_path):
    full = _run(tmp_path / 'full', 4, [RNGStateHook()])
    _run(tmp_path / 'split', 2, [RNGStateHook()])
    resumed = _run(tmp_path / 'split', 4, [RNGStateHook()], resume=True)
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    # without the hook the resumed run is reseeded and draws the first iterations' masks again: other weights
    _run(tmp_path / 'plain', 2, [])
    reseeded = _run(tmp_path / 'plain', 4, [], resume=True)
    assert not all(torch.equal(a, b) for a, b in zip(full.model.parameters(), reseeded.model.parameters()))


def test_validation_leaves_the_training_generators_where_they_were(tmp_path):
    """A validation after every iteration (its data loader takes a seed from torch's generator) gives the weights of
    a run without validation; without the hook it does not."""
    alone = _run(tmp_path / 'alone', 4, [RNGStateHook()])
    validated = _run(tmp_path / 'validated', 4, [RNGStateHook()], val_interval=1)
    unguarded = _run(tmp_path / 'unguarded', 4, [], val_interval=1)
    for a, b in zip(alone.model.parameters(), validated.model.parameters()):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(alone.model.parameters(), unguarded.model.parameters()))


def test_load_from_without_resume_keeps_the_generators(tmp_path):
    """Fine-tuning from a checkpoint (``load_from``, no resume) starts from the config's seed, not the saved states."""
    saved = torch.load(_run(tmp_path / 'first', 2, [RNGStateHook()]).work_dir + '/iter_2.pth', weights_only=False)
    assert set(saved['rng_state']) >= {'python', 'numpy', 'torch'}
    runner = Runner(model=DropoutRegression(), work_dir=str(tmp_path / 'second'), randomness=dict(seed=0),
                    load_from=str(tmp_path / 'first' / 'iter_2.pth'), default_scope='mmddetr',
                    experiment_name=f'rng_state_{next(RUNS)}')
    hook = RNGStateHook()
    state = torch.get_rng_state()
    hook.after_load_checkpoint(runner, saved)
    assert torch.equal(torch.get_rng_state(), state)
    runner._resume = True
    hook.after_load_checkpoint(runner, saved)
    assert torch.equal(torch.get_rng_state(), saved['rng_state']['torch'])
