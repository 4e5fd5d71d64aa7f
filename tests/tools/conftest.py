import os
import subprocess
import sys

import pytest

from tool_runs import TOY_ROOT_ARGS, check_ok


@pytest.fixture(scope='session')
def toy_root(tmp_path_factory):
    """A tiny toy dataset (16 train, 8 val images of 96 px), made once by ``tools/make_toy_dataset.py`` with
    ``TOY_ROOT_ARGS`` (test_toy_demo.py checks what it wrote)."""
    root = str(tmp_path_factory.mktemp('toy')) + '/'
    proc = check_ok(subprocess.run([sys.executable, 'tools/make_toy_dataset.py', '--root', root, *TOY_ROOT_ARGS],
                                   capture_output=True, text=True, timeout=600))
    assert proc.stdout == f'toy dataset at {root}: annotations/instances_{{train,val}}.json, train/, val/\n'
    return root


@pytest.fixture
def toy_options(toy_root):
    """--cfg-options for a seconds-long toy run on ``toy_root``: batch 2, checkpoints every 2 iterations."""
    return [
        f'train_dataloader.dataset.data_root={toy_root}', f'val_dataloader.dataset.data_root={toy_root}',
        f'test_dataloader.dataset.data_root={toy_root}',
        f'val_evaluator.ann_file={toy_root}annotations/instances_val.json',
        f'test_evaluator.ann_file={toy_root}annotations/instances_val.json', 'train_dataloader.batch_size=2',
        'val_dataloader.batch_size=4', 'test_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
        'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'val_dataloader.persistent_workers=False', 'test_dataloader.persistent_workers=False',
        'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
        'randomness.seed=0', 'model.encoder.num_layers=1', 'model.decoder.num_layers=2'
    ]


@pytest.fixture
def run_tool():
    """Run ``python tools/<name> args...`` in a fresh process (``env``: variables added to this one's); returns the
    CompletedProcess (output captured)."""

    def run(name, *args, launcher=None, timeout=600, env=None):
        cmd = [sys.executable, f'tools/{name}', *args] if launcher is None else [*launcher, f'tools/{name}', *args]
        env = dict(os.environ, OMP_NUM_THREADS='1', **(env or {}))
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)

    return run
