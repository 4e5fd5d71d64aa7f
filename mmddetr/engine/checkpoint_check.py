"""Reading checkpoints, and checking that one holds every weight of the model it is loaded into.

mmengine loads checkpoints non-strictly and only logs missing keys, so a checkpoint of another model (or a file with
no weights at all) would otherwise be evaluated as a randomly initialised, or half-loaded, detector. mmengine's loader
of local files (its ``CheckpointLoader`` scheme ``''``, used by ``load_from``, ``--resume``, mmdet's
``init_detector`` and ``DetInferencer``) is replaced by :func:`load_local_checkpoint`, i.e. :func:`read_checkpoint`:
importing this module registers it, as importing a module registers its classes; ``mmddetr.registry`` imports it
with the models.
"""
import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader
from torch import nn

from .checkpoint_globals import mmengine_checkpoint_globals


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that lacks weights of the model."""


def read_checkpoint(path: str, map_location='cpu') -> dict:
    """The checkpoint at ``path`` (weights-only ``torch.load``, mmengine's own checkpoints included), or a
    ``CheckpointError`` naming the file."""
    if not osp.isfile(path):
        raise CheckpointError(f'checkpoint {path}: no such file')
    try:
        with mmengine_checkpoint_globals():
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError... for damaged files
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f'checkpoint {path}: cannot be read ({reason})') from e
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'checkpoint {path}: expected a dict of weights, got {type(checkpoint).__name__}')
    return checkpoint


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_local_checkpoint(filename: str, map_location=None) -> dict:
    """mmengine's loader of local files (``load_from``, ``--resume``, ``init_detector``): :func:`read_checkpoint`."""
    return read_checkpoint(osp.expanduser(filename), map_location)


def check_checkpoint_weights(model: nn.Module, checkpoint: dict, path: str, shown: int = 5, hint: str = '',
                             allow_reshaped: bool = False) -> None:
    """Raises ``CheckpointError`` when ``checkpoint`` (read from ``path``) misses weights of ``model``, or, unless
    ``allow_reshaped`` (fine-tuning: mmengine skips those with a warning), holds some of another shape: how many, the
    first ``shown`` names, the run that saved it when the checkpoint records one, and ``hint`` (what to do)."""
    state = checkpoint.get('state_dict', checkpoint)
    state = {name[len('module.'):] if name.startswith('module.') else name: value for name, value in state.items()}
    expected = getattr(model, 'module', model).state_dict()
    missing = [name for name in expected if name not in state]
    reshaped = [f'{name} {tuple(state[name].shape)} for {tuple(weight.shape)}' for name, weight in expected.items()
                if name in state and isinstance(state[name], torch.Tensor) and state[name].shape != weight.shape]
    if not missing and (allow_reshaped or not reshaped):
        return
    meta = checkpoint.get('meta')
    saved_by = meta.get('experiment_name') if isinstance(meta, dict) else None
    origin = f'; it was saved by the run {saved_by!r}' if saved_by else ''
    if missing:
        problem = (f'{len(missing)} of the model\'s {len(expected)} weights are missing '
                   f'(first: {", ".join(missing[:shown])})')
    else:
        problem = (f'{len(reshaped)} of the model\'s {len(expected)} weights have another shape '
                   f'(first: {", ".join(reshaped[:shown])})')
    raise CheckpointError(f'checkpoint {path}: {problem}{origin}. Is it a checkpoint of this config?'
                          f'{" " + hint if hint else ""}')
