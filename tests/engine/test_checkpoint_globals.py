"""mmengine checkpoints load with torch.load's weights-only default; nothing else is let through."""
import io
import pickle

import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from mmddetr.engine import allow_mmengine_checkpoint_globals


def test_message_hub_state_round_trips_weights_only():
    allow_mmengine_checkpoint_globals()
    hub = MessageHub.get_instance('ckpt_globals_test')
    hub.update_scalar('train/loss', 1.5)
    hub.update_info('iter', 3)
    buf = io.BytesIO()
    torch.save(dict(message_hub=hub.state_dict(), meta=dict(seed=0)), buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    assert isinstance(loaded['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    assert loaded['message_hub']['log_scalars']['train/loss'].current() == 1.5


class _Evil:

    def __reduce__(self):
        return getattr, (HistoryBuffer, '__init__')


def test_getattr_is_limited_to_history_buffer_statistics():
    allow_mmengine_checkpoint_globals()
    buf = io.BytesIO()
    torch.save({'x': _Evil()}, buf, pickle_protocol=2)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError, match='only the HistoryBuffer statistics'):
        torch.load(buf, weights_only=True)
