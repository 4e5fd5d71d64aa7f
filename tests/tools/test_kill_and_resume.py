"""``kill -9`` while a checkpoint is being written, then ``--resume``: the weights of the uninterrupted run.

The kill lands mid-write deterministically: the killed run is ``tools/train.py`` in a process whose atomic writer
(``mmddetr.engine.checkpoint_io``) stops half-way through writing the part file of one checkpoint, flushes those
bytes to disk, says so and waits to be killed.
"""
import os
import os.path as osp
import signal
import subprocess
import sys
import time
import zipfile

from tool_runs import TOY, assert_same_weights, check_ok, load_checkpoint

# python -c PAUSED NAME READY tools/train.py ARGS...: train.py, whose write of checkpoint NAME stops half-way
PAUSED = '''
import builtins, os, runpy, sys, time
from mmddetr.engine import checkpoint_io
name, ready = sys.argv[1:3]

class HalfWritten:
    def __init__(self, file):
        self.file = file
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self.file.__exit__(*exc)
    def write(self, data):
        self.file.write(data[:len(data) // 2])
        self.file.flush()
        os.fsync(self.file.fileno())
        open(ready, 'w').close()
        time.sleep(600)

def paused_open(path, *args, **kwargs):
    file = builtins.open(path, *args, **kwargs)
    return HalfWritten(file) if os.path.basename(path) == f'.{name}.part' else file

checkpoint_io.open = paused_open  # the module's open (its global shadows the builtin), nothing else
sys.argv = sys.argv[3:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def _kill_mid_write(args, name, tmp_path, timeout=600):
    """Run ``tools/train.py args`` until it is half-way through writing checkpoint ``name``; SIGKILL it and its
    data worker there."""
    ready = str(tmp_path / 'paused')
    with open(tmp_path / 'killed.log', 'w') as log:
        proc = subprocess.Popen([sys.executable, '-c', PAUSED, name, ready, 'tools/train.py', *args], stdout=log,
                                stderr=subprocess.STDOUT, env=dict(os.environ, OMP_NUM_THREADS='1'),
                                start_new_session=True)
        deadline = time.monotonic() + timeout
        while not osp.exists(ready):
            assert proc.poll() is None and time.monotonic() < deadline, f'{name} was not written: see {log.name}'
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL


def test_kill_9_while_writing_a_checkpoint_then_resume_ends_with_the_uninterrupted_weights(run_tool, toy_options,
                                                                                            tmp_path):
    from mmddetr.engine import latest_checkpoint

    # no validation (resume across validations: test_train_test.py), so that the three runs take under a minute
    options = toy_options + ['train_dataloader.num_workers=1', 'train_cfg.max_iters=6', 'val_dataloader=None',
                             'val_cfg=None', 'val_evaluator=None']
    full, killed = str(tmp_path / 'full'), str(tmp_path / 'killed')
    check_ok(run_tool('train.py', TOY, '--work-dir', full, '--cfg-options', *options))

    _kill_mid_write([TOY, '--work-dir', killed, '--cfg-options', *options], 'iter_4.pth', tmp_path)
    part = osp.join(killed, '.iter_4.pth.part')  # killed mid-write: half a checkpoint on disk, under a hidden name
    full_size = osp.getsize(osp.join(full, 'iter_4.pth'))
    assert 0 < osp.getsize(part) < full_size and not zipfile.is_zipfile(part)
    assert not osp.exists(osp.join(killed, 'iter_4.pth'))
    assert latest_checkpoint(killed) == osp.join(killed, 'iter_2.pth')  # complete; the part file is not taken
    assert zipfile.is_zipfile(osp.join(killed, 'iter_2.pth'))

    proc = check_ok(run_tool('train.py', TOY, '--work-dir', killed, '--resume', '--cfg-options', *options))
    assert 'resumed epoch: 0, iter: 2' in proc.stdout + proc.stderr
    a, b = load_checkpoint(osp.join(full, 'iter_6.pth')), load_checkpoint(osp.join(killed, 'iter_6.pth'))
    assert a['meta']['iter'] == b['meta']['iter'] == 6
    assert_same_weights(a, b)
    # the part file was replaced by the next save of iter_4.pth; the hook still keeps the newest two checkpoints
    # (max_keep_ckpts=2) and points last_checkpoint at the newest
    assert sorted(n for n in os.listdir(killed) if n.endswith(('.pth', '.part'))) == ['iter_4.pth', 'iter_6.pth']
    with open(osp.join(killed, 'last_checkpoint')) as f:
        assert f.read() == osp.join(killed, 'iter_6.pth')
