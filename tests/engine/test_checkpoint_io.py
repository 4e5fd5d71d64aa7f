"""Atomic checkpoint writes and the choice of the checkpoint to resume from."""
import io
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.fileio import get_file_backend
from mmengine.runner.checkpoint import save_checkpoint

from mmddetr.engine import AtomicLocalBackend, latest_checkpoint


def _serialised(obj) -> bytes:
    with io.BytesIO() as f:
        torch.save(obj, f)
        return f.getvalue()


def test_config_backend_args_select_the_atomic_backend(tmp_path):
    cfg = Config.fromfile('configs/toy/deformable_detr_r18_toy_refine_twostage.py')
    backend = get_file_backend(str(tmp_path), backend_args=cfg.default_hooks.checkpoint.backend_args)
    assert isinstance(backend, AtomicLocalBackend)
    path = str(tmp_path / 'sub' / 'iter_1.pth')
    save_checkpoint({'w': torch.arange(3)}, path, backend_args=dict(backend='atomic_local'))
    assert torch.equal(torch.load(path)['w'], torch.arange(3))
    assert os.listdir(tmp_path / 'sub') == ['iter_1.pth']


@pytest.mark.parametrize('fail_at', ['write', 'fsync', 'replace'])
def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path, monkeypatch, fail_at):
    backend = AtomicLocalBackend()
    path = tmp_path / 'iter_2.pth'
    backend.put(_serialised({'w': torch.ones(2)}), path)
    old = path.read_bytes()

    data = memoryview(_serialised({'w': torch.zeros(1000)}))
    if fail_at == 'write':
        data.release()  # writing it raises, as a full disk would
    else:
        def fail(*args):
            raise OSError(5, f'{fail_at} failed')
        monkeypatch.setattr(os, fail_at, fail)
    with pytest.raises((OSError, ValueError)):
        backend.put(data, path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ['iter_2.pth']


def test_put_text_is_atomic_and_overwrites_a_stale_part_file(tmp_path):
    backend = AtomicLocalBackend()
    (tmp_path / '.last_checkpoint.part').write_bytes(b'half a pa')  # left by a killed process
    backend.put_text('work/iter_4.pth', tmp_path / 'last_checkpoint')
    assert (tmp_path / 'last_checkpoint').read_text() == 'work/iter_4.pth'
    assert os.listdir(tmp_path) == ['last_checkpoint']
    assert backend.get_text(tmp_path / 'last_checkpoint') == 'work/iter_4.pth'


def test_latest_checkpoint_is_the_newest_complete_one(tmp_path, logged_warnings):
    backend = AtomicLocalBackend()
    for step in (2, 4, 10):
        path = tmp_path / f'iter_{step}.pth'
        backend.put(_serialised({'step': step}), path)
    (tmp_path / 'iter_12.pth').write_bytes(_serialised({'step': 12})[:100])  # truncated in place
    (tmp_path / '.iter_14.pth.part').write_bytes(b'partial')
    (tmp_path / 'best_coco_bbox_mAP_iter_20.pth').write_bytes(_serialised({'step': 20}))
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))  # stale: the kill came before it
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_10.pth')
    assert logged_warnings == [f'{tmp_path / "iter_12.pth"} is not a complete checkpoint (truncated?); skipped for '
                               'resume']
    (tmp_path / 'last_checkpoint').write_text('')  # a kill while mmengine rewrote it
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_10.pth')


def test_latest_checkpoint_of_an_epoch_based_run_is_the_highest_epoch(tmp_path, logged_warnings):
    for epoch in (2, 9, 10):
        AtomicLocalBackend().put(_serialised({'epoch': epoch}), tmp_path / f'epoch_{epoch}.pth')
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / 'epoch_10.pth')  # by number, not by name
    assert logged_warnings == []


def test_latest_checkpoint_follows_last_checkpoint_outside_the_work_dir(tmp_path):
    out = tmp_path / 'elsewhere'
    out.mkdir()
    AtomicLocalBackend().put(_serialised({}), out / 'iter_6.pth')
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'last_checkpoint').write_text(str(out / 'iter_6.pth'))
    assert latest_checkpoint(str(work)) == str(out / 'iter_6.pth')
    (work / 'last_checkpoint').write_text(str(out / 'iter_8.pth'))  # removed or never written
    assert latest_checkpoint(str(work)) is None
    assert latest_checkpoint(str(tmp_path / 'missing')) is None
