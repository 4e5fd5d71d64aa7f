"""Reading back what a run logged: mmengine's ``vis_data/scalars.json`` (its ``LocalVisBackend``), one JSON record
per line: training records at every logging iteration (``iter``, ``loss``, ``time``, ...), validation records at
every validation (``step`` and the metrics, ``coco/bbox_mAP`` ...)."""
import glob
import json
import os.path as osp
from typing import Dict, List, Sequence, Tuple


def read_scalars(files: Sequence[str]) -> Tuple[List[dict], List[dict]]:
    """The training and the validation records of ``files``, each list ordered by iteration. A run resumed from a
    checkpoint logs into a new file and repeats the iterations after that checkpoint: give the files oldest first, and
    a later file's record of an iteration replaces an earlier one's.

    Returns:
        tuple[list[dict], list[dict]]: training records (those with ``iter``), validation records (those with a
        ``coco/`` metric; their iteration is ``step``).
    """
    train: Dict[int, dict] = {}
    val: Dict[int, dict] = {}
    for path in files:
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if 'iter' in record:
                    train[record['iter']] = record
                elif any(key.startswith('coco/') for key in record):
                    val[record['step']] = record
    return [train[i] for i in sorted(train)], [val[i] for i in sorted(val)]


def work_dir_scalars(work_dir: str) -> List[str]:
    """The ``scalars.json`` files of every session of the run in ``work_dir`` (mmengine's ``<work_dir>/<timestamp>/
    vis_data/``), oldest first."""
    return sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))


def training_seconds(train: Sequence[dict]) -> float:
    """Training time of the iterations ``train`` (records of :func:`read_scalars`) covers: each record's ``time`` (the
    mean seconds per iteration over the logging window) times the iterations since the record before it."""
    seconds, last = 0.0, 0
    for record in train:
        seconds += record['time'] * (record['iter'] - last)
        last = record['iter']
    return seconds
