"""Checkpoints that survive ``kill -9``: atomic writes, and ``--resume`` from the newest complete checkpoint.

mmengine 0.10.7 writes a checkpoint with ``open(path, 'wb')`` (``LocalBackend.put``), so a run killed while saving
leaves a truncated ``.pth`` under the final name, and ``CheckpointHook`` then rewrites ``last_checkpoint`` in place.
Configs select :class:`AtomicLocalBackend` through ``default_hooks.checkpoint.backend_args``, and ``tools/train.py
--resume`` picks the checkpoint with :func:`latest_checkpoint` instead of trusting ``last_checkpoint`` alone.
"""
import logging
import os
import os.path as osp
import re
import zipfile
from pathlib import Path
from typing import Optional, Union

from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging import print_log

PART_SUFFIX = '.part'
_STEP = re.compile(r'(?:iter|epoch)_(\d+)\.pth$')


def _atomic_write(data: bytes, filepath: Union[str, Path]) -> None:
    """Write ``data`` to a hidden ``.<name>.part`` file next to ``filepath``, flush it to disk, then rename it.

    Readers see the old file or the complete new one, never a partial one. A failed write removes its part file;
    one left by a killed process is overwritten by the next write of the same name.
    """
    filepath = os.fspath(filepath)
    directory, name = osp.split(osp.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    part = osp.join(directory, f'.{name}{PART_SUFFIX}')
    try:
        with open(part, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, filepath)
    except BaseException:
        if osp.exists(part):
            os.remove(part)
        raise


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose ``put`` and ``put_text`` replace files atomically.

    Select it with ``backend_args=dict(backend='atomic_local')`` (our ``default_runtime.py`` does so for the
    ``CheckpointHook``); reading, listing and removing files are ``LocalBackend``'s.
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write bytes to ``filepath`` atomically."""
        _atomic_write(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        """Write text to ``filepath`` atomically."""
        _atomic_write(obj.encode(encoding), filepath)


def _step(path: str) -> int:
    match = _STEP.search(osp.basename(path))
    return int(match.group(1)) if match else -1


def latest_checkpoint(work_dir: str) -> Optional[str]:
    """The newest complete checkpoint of a run: the highest ``iter_N.pth`` / ``epoch_N.pth`` in ``work_dir``, or
    the file ``last_checkpoint`` names (when the hook saves elsewhere), whichever has the higher step.

    ``last_checkpoint`` alone can be stale (a kill between saving a checkpoint and updating it), empty (a kill while
    mmengine rewrites it) or name a checkpoint the hook has already removed. Files that are not complete torch
    checkpoints (truncated by a kill in a run that wrote them in place) are skipped with a warning.

    Returns:
        str or None: the checkpoint's path, None when the work dir holds no complete checkpoint.
    """
    candidates = {osp.join(work_dir, name) for name in os.listdir(work_dir) if _STEP.fullmatch(name)} \
        if osp.isdir(work_dir) else set()
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
        if named and osp.isfile(named):
            candidates.add(named)
    for path in sorted(candidates, key=lambda p: (_step(p), osp.getmtime(p)), reverse=True):
        if zipfile.is_zipfile(path):
            return path
        print_log(f'{path} is not a complete checkpoint (truncated?); skipped for resume', logger='current',
                  level=logging.WARNING)
    return None
