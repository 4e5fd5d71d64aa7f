"""mmengine checkpoints load with torch.load's weights-only default, only while a checkpoint is read; nothing else
is let through."""
import io
import pickle
import subprocess
import sys

import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from mmddetr.engine import mmengine_checkpoint_globals


def _message_hub_checkpoint(path=None):
    hub = MessageHub.get_instance('ckpt_globals_test')
    hub.update_scalar('train/loss', 1.5)
    hub.update_info('iter', 3)
    buf = path or io.BytesIO()
    torch.save(dict(message_hub=hub.state_dict(), meta=dict(seed=0)), buf)
    return buf


def test_message_hub_state_round_trips_weights_only_within_the_context():
    buf = _message_hub_checkpoint()
    buf.seek(0)
    with mmengine_checkpoint_globals():
        loaded = torch.load(buf, weights_only=True)
    assert isinstance(loaded['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    assert loaded['message_hub']['log_scalars']['train/loss'].current() == 1.5
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError):  # the allowlist is not left behind
        torch.load(buf, weights_only=True)


def test_mmengine_loader_reads_mmengine_checkpoints_within_our_loader_only(tmp_path):
    """What mmdet's init_detector / DetInferencer and the runner's load_from / resume run: mmengine's CheckpointLoader,
    in a fresh process that built (looked up) one of our models. mmengine's own loader (a bare ``torch.load``, whose
    default is weights-only) cannot read the message hub; within ``mmengine_checkpoint_loader()`` it can, and the
    allowlist and the loader are gone after it."""
    path = str(tmp_path / 'hub.pth')
    _message_hub_checkpoint(path)
    code = ('import pickle, torch\n'
            'from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint, load_from_local\n'
            'from mmddetr.registry import MODELS\n'
            'assert MODELS.get("DeformableDETR") is not None\n'
            'before = set(map(repr, torch.serialization.get_safe_globals()))\n'
            'try:\n'
            f'    _load_checkpoint({path!r}, map_location="cpu")\n'
            '    raise AssertionError("mmengine read it weights-only")\n'
            'except pickle.UnpicklingError as e:\n'
            '    assert "HistoryBuffer" in str(e), e\n'
            'from mmddetr.engine import mmengine_checkpoint_loader\n'
            'with mmengine_checkpoint_loader():\n'
            f'    loaded = _load_checkpoint({path!r}, map_location="cpu")\n'
            'assert loaded["message_hub"]["log_scalars"]["train/loss"].current() == 1.5\n'
            'assert set(map(repr, torch.serialization.get_safe_globals())) == before\n'
            'assert CheckpointLoader._schemes[""] is load_from_local\n')
    subprocess.run([sys.executable, '-c', code], check=True)


class _Evil:

    def __reduce__(self):
        return getattr, (HistoryBuffer, '__init__')


def test_getattr_is_limited_to_history_buffer_statistics():
    buf = io.BytesIO()
    torch.save({'x': _Evil()}, buf, pickle_protocol=2)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError, match='only the HistoryBuffer statistics'), \
            mmengine_checkpoint_globals():
        torch.load(buf, weights_only=True)
