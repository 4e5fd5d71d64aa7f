"""Let ``torch.load(weights_only=True)`` (the default since torch 2.6) read mmengine's own checkpoints.

mmengine 0.10.7 saves the message hub (``HistoryBuffer``, numpy scalars and arrays) and config metadata inside its
checkpoints and loads them with a bare ``torch.load``, so ``--resume`` fails on torch >= 2.6 with an
``UnpicklingError``. Rather than turning the safety off (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``), we allow exactly the
classes those checkpoints hold, and only while a checkpoint is being read: :func:`mmengine_checkpoint_globals` around
every read (:func:`mmddetr.engine.read_checkpoint`, mmengine's loader of local files within
:func:`mmddetr.engine.mmengine_checkpoint_loader`).
"""
import codecs
import collections
import contextlib
import pickle
from typing import Iterator

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.logging import HistoryBuffer


def _numpy_globals() -> list:
    reconstruct = np._core.multiarray._reconstruct if hasattr(np, '_core') else np.core.multiarray._reconstruct
    scalar = np._core.multiarray.scalar if hasattr(np, '_core') else np.core.multiarray.scalar
    dtypes = [type(np.dtype(t)) for t in ('float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64',
                                          'uint8', 'uint16', 'uint32', 'uint64', 'bool')]
    return [reconstruct, scalar, np.ndarray, np.dtype, *dtypes]


_DEFAULT_STATISTICS = {'min', 'max', 'mean', 'current'}


def _history_buffer_getattr(obj: object, name: str) -> object:
    """``getattr`` as mmengine checkpoints use it (a ``HistoryBuffer``'s statistics methods) and nothing more.

    Allowing the builtin ``getattr`` would let a crafted file reach any attribute of an allowed class (and from
    there the interpreter); this stand-in answers only for ``HistoryBuffer`` statistics.
    """
    allowed = _DEFAULT_STATISTICS | set(HistoryBuffer._statistics_methods)
    if (obj is HistoryBuffer or isinstance(obj, HistoryBuffer)) and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(f'checkpoint asks for attribute {name!r} of {obj!r}; only the HistoryBuffer '
                                 f'statistics {sorted(allowed)} are allowed')


MMENGINE_CHECKPOINT_GLOBALS = [
    HistoryBuffer, ConfigDict, collections.OrderedDict, collections.Counter, codecs.encode, *_numpy_globals(),
    (_history_buffer_getattr, '__builtin__.getattr'), (_history_buffer_getattr, 'builtins.getattr')
]


@contextlib.contextmanager
def mmengine_checkpoint_globals() -> Iterator[None]:
    """Within the context, ``torch.load(weights_only=True)`` also accepts the classes of mmengine checkpoints."""
    with torch.serialization.safe_globals(MMENGINE_CHECKPOINT_GLOBALS):
        yield

