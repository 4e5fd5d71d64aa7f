"""Checkpoints that cannot be read or lack the model's weights are clear errors, in the library and in the tools."""
import pytest
import torch
from torch import nn

from mmddetr.engine import CheckpointError, check_checkpoint_weights, read_checkpoint


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
