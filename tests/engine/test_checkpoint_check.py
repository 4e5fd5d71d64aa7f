"""Checkpoints that cannot be read or lack the model's weights are clear errors, in the library and in the tools;
mmengine reads checkpoints with ``read_checkpoint`` only within ``mmengine_checkpoint_loader()``."""
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint, load_from_local
from torch import nn

from mmddetr.engine import CheckpointError, check_checkpoint_weights, first_line, mmengine_checkpoint_loader, \
    read_checkpoint


def _model():
    return nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))


def test_complete_checkpoint_passes_with_or_without_wrapper(tmp_path):
    model = _model()
    path = str(tmp_path / 'ok.pth')
    torch.save(dict(state_dict={f'module.{k}': v for k, v in model.state_dict().items()}), path)
    check_checkpoint_weights(model, read_checkpoint(path), path)
    torch.save(model.state_dict(), path)
    check_checkpoint_weights(model, read_checkpoint(path), path)


def test_missing_weights_are_counted_and_named(tmp_path):
    model = _model()
    path = str(tmp_path / 'half.pth')
    state = {k: v for k, v in model.state_dict().items() if k.startswith('0.')}
    torch.save(dict(state_dict=state, meta=dict(experiment_name='toy_twostage_20261204')), path)
    with pytest.raises(CheckpointError, match=r"2 of the model's 4 weights are missing \(first: 1.weight, 1.bias\)"
                       r".*'toy_twostage_20261204'"):
        check_checkpoint_weights(model, read_checkpoint(path), path)
    torch.save({'hello': 1}, path)
    with pytest.raises(CheckpointError, match="4 of the model's 4 weights are missing"):
        check_checkpoint_weights(model, read_checkpoint(path), path)


def test_weights_of_another_shape_are_named(tmp_path):
    path = str(tmp_path / 'other.pth')
    other = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 2))
    torch.save(dict(state_dict=other.state_dict()), path)
    with pytest.raises(CheckpointError, match=r"2 of the model's 4 weights have another shape \(first: 1.weight "
                       r"\(2, 3\) for \(1, 3\), 1.bias \(2,\) for \(1,\)\).*this config"):
        check_checkpoint_weights(_model(), read_checkpoint(path), path)
    check_checkpoint_weights(_model(), read_checkpoint(path), path, allow_reshaped=True)  # fine-tuning's load_from


def test_unreadable_checkpoints_name_the_file(tmp_path):
    model = _model()
    path = tmp_path / 'cut.pth'
    torch.save(dict(state_dict=model.state_dict()), str(path))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=f'checkpoint {path}: cannot be read'):
        read_checkpoint(str(path))
    torch.save([1, 2], str(path))
    with pytest.raises(CheckpointError, match='expected a dict of weights, got list'):
        read_checkpoint(str(path))
    with pytest.raises(CheckpointError, match=f'checkpoint {tmp_path}/absent.pth: no such file'):
        read_checkpoint(str(tmp_path / 'absent.pth'))


def test_first_line_of_an_error_or_its_type():
    assert first_line(RuntimeError('  PytorchStreamReader failed\n  at line 2\n')) == 'PytorchStreamReader failed'
    assert first_line(EOFError()) == 'EOFError'
    assert first_line(ValueError('  \n ')) == 'ValueError'


def _mmengine_checkpoint(path):
    """A checkpoint as mmengine's Runner saves them: its message hub needs our allowlist to load weights-only."""
    hub = MessageHub.get_instance('loader_test')
    hub.update_scalar('train/loss', 0.5)
    torch.save(dict(state_dict=_model().state_dict(), message_hub=hub.state_dict()), path)


def test_mmengine_reads_with_read_checkpoint_within_the_context_only(tmp_path):
    path = str(tmp_path / 'runner.pth')
    _mmengine_checkpoint(path)
    schemes = list(CheckpointLoader._schemes.items())
    assert CheckpointLoader._schemes[''] is load_from_local  # mmengine's own, which reads it only without weights_only
    with mmengine_checkpoint_loader():
        assert _load_checkpoint(path)['message_hub']['log_scalars']['train/loss'].current() == 0.5
        with pytest.raises(CheckpointError, match=f'^checkpoint {tmp_path}/absent.pth: no such file$'):
            _load_checkpoint(str(tmp_path / 'absent.pth'))
        with mmengine_checkpoint_loader():  # nested: the outer one's loader comes back
            pass
        assert _load_checkpoint(path)['message_hub']['log_scalars']['train/loss'].current() == 0.5
    assert list(CheckpointLoader._schemes.items()) == schemes
    with pytest.raises(FileNotFoundError):  # mmengine's error again
        _load_checkpoint(str(tmp_path / 'absent.pth'))


def test_the_previous_loader_comes_back_after_an_error(tmp_path):
    schemes = list(CheckpointLoader._schemes.items())
    with pytest.raises(CheckpointError, match='cannot be read'), mmengine_checkpoint_loader():
        (tmp_path / 'cut.pth').write_bytes(b'PK\x03\x04 not a zip')
        _load_checkpoint(str(tmp_path / 'cut.pth'))
    assert list(CheckpointLoader._schemes.items()) == schemes
