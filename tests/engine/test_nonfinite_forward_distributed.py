"""NonFiniteLossHook in a distributed run: a ``FloatingPointError`` raised inside the forward pass (as
``HungarianAssigner`` raises on non-finite matching costs) stops the run even with ``action='skip'``, which a single
process would skip (test_nonfinite_loss_hook.py)."""
import datetime
import gc
import json
from types import SimpleNamespace

import torch
from mmengine.model import BaseModel


class _MatchingFailsOnNaN(BaseModel):
    """One layer whose forward pass raises ``FloatingPointError`` on non-finite inputs, as the matching does."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='loss'):
        if not inputs.isfinite().all():
            raise FloatingPointError('non-finite inputs')
        return dict(loss=self.linear(inputs).abs().mean())


def _rank(rank, out_dir):
    """One of two gloo ranks: steps at iterations 1..3 of a DDP-wrapped model with ``NonFiniteLossHook('skip')``, NaN
    inputs on both ranks at iteration 2. Writes each step's logged names, or the error that ended the run, and the
    weights after each step."""
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel
    from mmengine.optim import OptimWrapper

    from mmddetr.engine import NonFiniteLossHook

    dist.init_process_group('gloo', init_method=f'file://{out_dir}/store', rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=60))
    torch.manual_seed(0)
    model = MMDistributedDataParallel(_MatchingFailsOnNaN(), device_ids=None)
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    hook, runner = NonFiniteLossHook('skip'), SimpleNamespace(model=model, iter=0)
    hook.before_train(runner)
    outcomes, weights = [], []
    for iteration, value in enumerate((1.0, float('nan'), 1.0)):
        runner.iter = iteration
        try:
            outcomes.append(sorted(model.train_step(dict(inputs=torch.full((4, 2), value)), optim_wrapper)))
        except FloatingPointError as error:
            outcomes.append(str(error))
            break
        finally:
            weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]).tolist())
    with open(f'{out_dir}/rank_{rank}.json', 'w') as f:
        json.dump(dict(outcomes=outcomes, skipped=hook.skipped_steps, weights=weights), f)
    # DDP's reducer must not hold the group's last reference when the group ends (a deadlock on the GIL otherwise)
    del model, optim_wrapper, runner
    gc.collect()
    dist.destroy_process_group()


def test_a_forward_pass_error_stops_every_rank_even_when_skipping(tmp_path, spawn_ranks):
    spawn_ranks(_rank, (str(tmp_path), ))
    for rank in (0, 1):
        result = json.loads((tmp_path / f'rank_{rank}.json').read_text())
        assert result['outcomes'] == [
            ['loss'], 'non-finite values in the forward pass at iteration 2: non-finite inputs; the weights were not '
                      'updated (a distributed run cannot skip a step whose forward pass failed)']
        assert result['skipped'] == 0
        assert result['weights'][1] == result['weights'][0]  # the failed step changed nothing
