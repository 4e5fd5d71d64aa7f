"""``kill -9`` while a checkpoint is being saved, then ``--resume``: the weights of the uninterrupted run."""
import os
import os.path as osp
import signal
import subprocess
import sys
import time
import zipfile

import pytest
import torch

from conftest import TOY, check_ok, load_checkpoint


def _kill_when_saving(args, work_dir, name, timeout=600):
    """Start ``tools/train.py args``; SIGKILL it (and its data worker) as soon as checkpoint ``name`` starts being
    written (its part file appears) or exists. Returns whether the kill came while the file was being written."""
    part, final = osp.join(work_dir, f'.{name}.part'), osp.join(work_dir, name)
    with open(osp.join(osp.dirname(work_dir), 'killed.log'), 'w') as log:
        proc = subprocess.Popen([sys.executable, 'tools/train.py', *args], stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, OMP_NUM_THREADS='1'), start_new_session=True)
        deadline = time.monotonic() + timeout
        while not (osp.exists(part) or osp.exists(final)):
            assert proc.poll() is None and time.monotonic() < deadline, f'no {name} before the run ended'
            time.sleep(0.001)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return not osp.exists(final)


@pytest.mark.slow
def test_kill_9_while_saving_then_resume_ends_with_the_uninterrupted_weights(run_tool, toy_options, tmp_path):
    options = toy_options + ['train_dataloader.num_workers=1', 'train_cfg.max_iters=6']
    full, killed = str(tmp_path / 'full'), str(tmp_path / 'killed')
    check_ok(run_tool('train.py', TOY, '--work-dir', full, '--cfg-options', *options))

    mid_save = _kill_when_saving([TOY, '--work-dir', killed, '--cfg-options', *options], killed, 'iter_4.pth')
    for name in os.listdir(killed):  # every checkpoint left is complete; a part file is not mistaken for one
        if name.endswith('.pth'):
            assert not name.startswith('.') and zipfile.is_zipfile(osp.join(killed, name)), name

    proc = check_ok(run_tool('train.py', TOY, '--work-dir', killed, '--resume', '--cfg-options', *options))
    step = 2 if mid_save else 4
    assert f'resumed epoch: 0, iter: {step}' in proc.stdout + proc.stderr
    a, b = load_checkpoint(osp.join(full, 'iter_6.pth')), load_checkpoint(osp.join(killed, 'iter_6.pth'))
    assert a['meta']['iter'] == b['meta']['iter'] == 6
    for key, value in a['state_dict'].items():
        assert torch.equal(b['state_dict'][key], value), key
    # the hook still keeps the newest two checkpoints (max_keep_ckpts=2) and points last_checkpoint at the newest
    assert sorted(n for n in os.listdir(killed) if n.endswith(('.pth', '.part'))) == ['iter_4.pth', 'iter_6.pth']
    with open(osp.join(killed, 'last_checkpoint')) as f:
        assert f.read() == osp.join(killed, 'iter_6.pth')
