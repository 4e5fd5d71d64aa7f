"""Checks that a checkpoint can be read and holds every weight of the model it is loaded into.

mmengine loads checkpoints non-strictly and only logs missing keys, so a checkpoint of another model (or a file with
no weights at all) would otherwise be evaluated as a randomly initialised, or half-loaded, detector.
"""
import torch
from torch import nn

from .checkpoint_globals import mmengine_checkpoint_globals


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that lacks weights of the model."""


def read_checkpoint(path: str) -> dict:
    """The checkpoint at ``path`` (loaded on the CPU, weights-only), or a ``CheckpointError`` naming the file."""
    try:
        with mmengine_checkpoint_globals():
            checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError... for damaged files
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f'checkpoint {path}: cannot be read ({reason})') from e
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'checkpoint {path}: expected a dict of weights, got {type(checkpoint).__name__}')
    return checkpoint


def check_checkpoint_weights(model: nn.Module, checkpoint: dict, path: str, shown: int = 5) -> None:
    """Raises ``CheckpointError`` when ``checkpoint`` (read from ``path`` by ``read_checkpoint``) misses weights of
    ``model``, or holds some of another shape (mmengine skips those with a warning): how many, the first ``shown``
    names, and the run that saved it when the checkpoint records one."""
    state = checkpoint.get('state_dict', checkpoint)
    state = {name[len('module.'):] if name.startswith('module.') else name: value for name, value in state.items()}
    expected = getattr(model, 'module', model).state_dict()
    missing = [name for name in expected if name not in state]
    reshaped = [f'{name} {tuple(state[name].shape)} for {tuple(weight.shape)}' for name, weight in expected.items()
                if name in state and isinstance(state[name], torch.Tensor) and state[name].shape != weight.shape]
    if not missing and not reshaped:
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
    raise CheckpointError(f'checkpoint {path}: {problem}{origin}. Is it a checkpoint of this config?')
