"""docs/tools.md: mmdet's own ``init_detector`` and ``inference_detector`` (``mmdet.apis``) load our configs and
checkpoints: a toy checkpoint of random weights, made here, is loaded in full into our detector and predicts as the
model that saved it. A checkpoint as our training saves them (mmengine's message hub inside) needs
``mmddetr.engine.mmengine_checkpoint_loader()`` around the call."""
import subprocess
import sys

import mmcv
import numpy as np
import torch

from tool_runs import TOY

CLASSES = ('circle', 'square', 'triangle', 'ring', 'cross')


def test_init_detector_and_inference_detector_load_our_config_and_checkpoint(build_detector, perturb, tmp_path):
    from mmdet.apis import inference_detector, init_detector

    saved = perturb(build_detector(TOY).eval())  # off any initialisation init_detector could reproduce
    checkpoint = str(tmp_path / 'toy.pth')
    torch.save(dict(state_dict=saved.state_dict(), meta=dict(dataset_meta=dict(classes=CLASSES))), checkpoint)

    model = init_detector(TOY, checkpoint, device='cpu')
    assert type(model).__module__.startswith('mmddetr.') and type(model) is type(saved)
    assert model.state_dict().keys() == saved.state_dict().keys()
    for key, value in saved.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert model.dataset_meta['classes'] == CLASSES and not model.training

    image = str(tmp_path / 'image.png')
    mmcv.imwrite(np.random.default_rng(0).integers(0, 256, (72, 104, 3), dtype=np.uint8), image)
    result = inference_detector(model, image)
    saved.cfg = model.cfg
    expected = inference_detector(saved, image)
    assert result.ori_shape == (72, 104) and len(result.pred_instances) == 100
    boxes = result.pred_instances.bboxes
    assert (boxes >= 0).all() and (boxes[:, 0::2] <= 104).all() and (boxes[:, 1::2] <= 72).all()
    for key in ('scores', 'labels', 'bboxes'):
        assert torch.equal(result.pred_instances[key], expected.pred_instances[key]), key


PLAIN_THEN_DOCUMENTED = '''
import pickle, sys, torch
from mmdet.apis import init_detector
config, checkpoint, expected = sys.argv[1:]
try:
    init_detector(config, checkpoint, device='cpu')
    raise AssertionError('mmengine read the message hub weights-only')
except pickle.UnpicklingError as e:  # torch's, through mmengine's loader of local files
    frames = [frame.name for frame in __import__('traceback').extract_tb(e.__traceback__)]
    assert 'load_from_local' in frames and 'read_checkpoint' not in frames, frames
    assert 'HistoryBuffer' in str(e), e
from mmddetr.engine import mmengine_checkpoint_loader
with mmengine_checkpoint_loader():
    model = init_detector(config, checkpoint, device='cpu')
for key, value in torch.load(expected).items():
    assert torch.equal(model.state_dict()[key], value), key
'''


def test_plain_init_detector_of_a_runner_checkpoint_needs_our_loader(build_detector, perturb, tmp_path):
    """docs/tools.md: in a fresh process, mmdet's ``init_detector`` of a checkpoint as our training saves them (with
    mmengine's message hub) fails with mmengine's error (torch's weights-only default refuses its classes); within
    ``mmddetr.engine.mmengine_checkpoint_loader()`` it loads every weight."""
    from mmengine.logging import MessageHub
    from mmengine.runner import save_checkpoint

    saved = perturb(build_detector(TOY))
    checkpoint, expected = str(tmp_path / 'toy.pth'), str(tmp_path / 'expected.pt')
    hub = MessageHub.get_instance('init_detector_test')
    hub.update_scalar('train/loss', 0.5)
    save_checkpoint(dict(state_dict=saved.state_dict(), message_hub=hub.state_dict()), checkpoint)
    torch.save(saved.state_dict(), expected)
    subprocess.run([sys.executable, '-c', PLAIN_THEN_DOCUMENTED, TOY, checkpoint, expected], check=True, timeout=600)
