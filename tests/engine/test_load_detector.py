"""``mmddetr.engine.load_detector``: mmdet's ``init_detector`` with the checkpoint read by ``read_checkpoint`` and
checked to hold every weight of the config's model; mmengine's loader and the default scope are left as they were."""
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.registry import DefaultScope
from mmengine.runner import save_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from mmddetr.engine import CheckpointError, load_detector
from toy_configs import MAIN_TOY, PLAIN_TOY

CLASSES = ('circle', 'square', 'triangle', 'ring', 'cross')


def _save(model, path):
    """``model``'s weights as mmengine's Runner saves a checkpoint (a message hub, which only our allowlist lets
    torch's weights-only default read, and the dataset's classes)."""
    hub = MessageHub.get_instance('load_detector_test')
    hub.update_scalar('train/loss', 0.5)
    save_checkpoint(dict(state_dict=model.state_dict(), message_hub=hub.state_dict(),
                         meta=dict(dataset_meta=dict(classes=CLASSES))), path)


def test_load_detector_loads_every_weight_and_changes_nothing_else(build_detector, perturb, tmp_path):
    saved = perturb(build_detector(MAIN_TOY).eval())  # off any initialisation init_detector could reproduce
    path = str(tmp_path / 'toy.pth')
    _save(saved, path)
    schemes, scope = list(CheckpointLoader._schemes.items()), DefaultScope.get_current_instance()

    model = load_detector(MAIN_TOY, path)
    assert type(model) is type(saved) and not model.training and model.dataset_meta['classes'] == CLASSES
    assert model.state_dict().keys() == saved.state_dict().keys()
    for key, value in saved.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert list(CheckpointLoader._schemes.items()) == schemes and DefaultScope.get_current_instance() is scope


def test_load_detector_refuses_a_checkpoint_of_another_model(build_detector, tmp_path):
    plain = build_detector(PLAIN_TOY)  # no box refinement, no two-stage: the main toy model has more weights
    path = str(tmp_path / 'plain.pth')
    _save(plain, path)
    with pytest.raises(CheckpointError, match=rf"^checkpoint {path}: \d+ of the model's \d+ weights are missing"):
        load_detector(MAIN_TOY, path)
    with pytest.raises(CheckpointError, match=f'^checkpoint {tmp_path}/absent.pth: no such file$'):
        load_detector(MAIN_TOY, str(tmp_path / 'absent.pth'))
