"""Reading checkpoints, and checking that one holds every weight of the model it is loaded into.

mmengine loads checkpoints non-strictly and only logs missing keys, so a checkpoint of another model (or a file with
no weights at all) would otherwise be evaluated as a randomly initialised, or half-loaded, detector. Within
:func:`mmengine_checkpoint_loader`, mmengine's loader of local files (its ``CheckpointLoader`` scheme ``''``, used by
``load_from``, ``--resume``, mmdet's ``init_detector`` and ``DetInferencer``) is :func:`read_checkpoint`; importing
this module changes nothing in mmengine.
"""
import contextlib
import os.path as osp
from typing import Iterator, Union

import torch
from mmdet.apis import init_detector
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import CheckpointLoader
from torch import nn

from .checkpoint_globals import mmengine_checkpoint_globals
from .errors import first_line


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that lacks weights of the model."""


def read_checkpoint(path: str, map_location='cpu') -> dict:
    """The checkpoint at ``path`` (``~`` expanded; weights-only ``torch.load``, mmengine's own checkpoints included),
    or a ``CheckpointError`` naming the file."""
    if not osp.isfile(osp.expanduser(path)):
        raise CheckpointError(f'checkpoint {path}: no such file')
    try:
        with mmengine_checkpoint_globals():
            checkpoint = torch.load(osp.expanduser(path), map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError... for damaged files
        raise CheckpointError(f'checkpoint {path}: cannot be read ({first_line(e)})') from e
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'checkpoint {path}: expected a dict of weights, got {type(checkpoint).__name__}')
    return checkpoint


def load_from_local(filename: str, map_location=None) -> dict:
    """:func:`read_checkpoint` as mmengine's loader of local files (mmengine logs the name after ``load_from_``)."""
    return read_checkpoint(filename, map_location)


@contextlib.contextmanager
def mmengine_checkpoint_loader() -> Iterator[None]:
    """Within the context, mmengine reads local checkpoint files (``load_from``, ``--resume``, mmdet's
    ``init_detector`` and ``DetInferencer``) with :func:`read_checkpoint`: mmengine's own checkpoints load with
    torch's weights-only default, and a file that is absent or cannot be read is a ``CheckpointError`` naming it.
    The loader that was registered before is put back on leaving the context, also on an exception."""
    previous = CheckpointLoader._schemes['']
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
    try:
        yield
    finally:
        CheckpointLoader.register_scheme(prefixes='', loader=previous, force=True)


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


def load_detector(config: Union[str, Config], checkpoint: str, device: str = 'cpu') -> nn.Module:
    """mmdet's ``init_detector`` of ``config`` (a file or a ``Config``) with the weights of ``checkpoint``, read
    with :func:`read_checkpoint` (within :func:`mmengine_checkpoint_loader`) and checked to hold every weight of the
    model (:func:`check_checkpoint_weights`). The default registry scope is left as it was (``init_detector`` would
    leave the config's).

    Returns:
        nn.Module: The detector on ``device``, in eval mode, with the checkpoint's ``dataset_meta``.

    Raises:
        CheckpointError: naming the file, when it is absent, cannot be read or misses weights of the model.
    """
    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    weights = read_checkpoint(checkpoint)
    with mmengine_checkpoint_loader(), DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmdet')):
        model = init_detector(cfg, checkpoint, device=device)
    check_checkpoint_weights(model, weights, checkpoint)
    return model
