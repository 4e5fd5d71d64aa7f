"""Measure the training time of an iteration-based run, and stop it after a wall-clock budget with its last
checkpoint and validation."""
import time
from typing import List, Optional, Tuple

from mmengine.hooks import Hook

from mmddetr.registry import HOOKS


@HOOKS.register_module()
class TimeBudgetHook(Hook):
    """Fit ``IterBasedTrainLoop`` training into ``minutes`` of training time (or only measure it).

    After ``estimate_after`` iterations, ``max_iters`` is set to what the measured speed allows (so the progress
    bar's ETA is right); the budget is then enforced exactly. Ending early goes through the loop's own last
    iteration, so the ``CheckpointHook`` saves the final weights and the loop runs its final validation. Time spent
    in validation does not count. ``history`` records (iteration, training minutes, metrics) at every validation.

    Args:
        minutes (float, optional): Training time budget. None: no budget, the hook only measures and records.
        estimate_after (int): Iterations measured before ``max_iters`` is set. Default: 20.
    """

    priority = 'VERY_HIGH'  # before the CheckpointHook checks for the last iteration

    def __init__(self, minutes: Optional[float] = None, estimate_after: int = 20) -> None:
        if minutes is not None and minutes <= 0:
            raise ValueError(f'minutes must be positive, got {minutes}')
        self.budget = None if minutes is None else minutes * 60
        self.estimate_after = estimate_after
        self.elapsed = 0.0
        self.iters = 0
        self.history: List[Tuple[int, float, dict]] = []
        self._start: Optional[float] = None

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self.elapsed += time.perf_counter() - self._start
        self.iters += 1
        loop = runner.train_loop
        if self.budget is None:
            return
        if self.iters == self.estimate_after:
            affordable = int(self.iters * self.budget / self.elapsed)
            loop._max_iters = max(runner.iter + 1, min(loop.max_iters, runner.iter + 1 + affordable - self.iters))
            runner.logger.info(f'TimeBudgetHook: {self.elapsed / self.iters:.2f} s/iter, training to iteration '
                               f'{loop.max_iters} in {self.budget / 60:.1f} min')
        if self.elapsed >= self.budget and runner.iter + 1 < loop.max_iters:
            loop._max_iters = runner.iter + 1
            runner.logger.info(f'TimeBudgetHook: {self.budget / 60:.1f} min used; stopping at iteration '
                               f'{loop.max_iters}')

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self.history.append((runner.iter, self.elapsed / 60, dict(metrics or {})))
