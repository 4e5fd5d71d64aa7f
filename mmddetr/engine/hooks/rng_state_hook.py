"""Save and restore the random number generators with checkpoints, so a resumed run equals an uninterrupted one."""
import random

import numpy as np
import torch
from mmengine.hooks import Hook

from mmddetr.registry import HOOKS


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Put the Python, numpy and torch (CPU and CUDA) generator states into every checkpoint and restore them on
    resume; keep validation from drawing on them.

    mmengine reseeds on start, so without this a resumed run draws other dropout masks than the uninterrupted run
    it continues; and every validation pass takes a seed from torch's generator (for its data loader), which a
    resumed run does not replay. Augmentations run in data workers, seeded by mmengine per worker, so they replay
    when resume skips the trained batches (with ``num_workers=0`` they draw from the main process and do not).
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._before_val = None

    @staticmethod
    def _get() -> dict:
        state = dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state())
        if torch.cuda.is_available():
            state['cuda'] = torch.cuda.get_rng_state_all()
        return state

    @staticmethod
    def _set(state: dict) -> None:
        random.setstate(state['python'])
        np.random.set_state(state['numpy'])
        torch.set_rng_state(state['torch'])
        if 'cuda' in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_state'] = self._get()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if 'rng_state' in checkpoint and runner._resume:
            self._set(checkpoint['rng_state'])

    def before_val(self, runner) -> None:
        self._before_val = self._get()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            self._set(self._before_val)
            self._before_val = None
