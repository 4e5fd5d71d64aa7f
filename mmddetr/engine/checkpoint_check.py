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


def check_checkpoint_weights(model: nn.Module, checkpoint: dict, path: str, shown: int = 5, hint: str = '') -> None:
    """Raises ``CheckpointError`` when ``checkpoint`` (read from ``path``) misses weights of ``model``: how many, the
    first ``shown`` names, the run that saved it when the checkpoint records one, and ``hint`` (what to do)."""
    state = checkpoint.get('state_dict', checkpoint)
    names = {name[len('module.'):] if name.startswith('module.') else name for name in state}
    expected = list(getattr(model, 'module', model).state_dict())
    missing = [name for name in expected if name not in names]
    if not missing:
        return
    meta = checkpoint.get('meta')
    saved_by = meta.get('experiment_name') if isinstance(meta, dict) else None
    origin = f'; it was saved by the run {saved_by!r}' if saved_by else ''
    raise CheckpointError(f'checkpoint {path}: {len(missing)} of the model\'s {len(expected)} weights are missing '
                          f'(first: {", ".join(missing[:shown])}){origin}. Is it a checkpoint of this config?'
                          f'{" " + hint if hint else ""}')
