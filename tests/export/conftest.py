import pytest
import torch


@pytest.fixture(scope='session')
def per_image():
    """``split(scores, labels, boxes, valid_sizes)`` → one ``InstanceData`` per image of the exported model's outputs
    (tensors or arrays), boxes divided by the image's valid (w, h): tolerances relative to the image size."""
    from mmengine.structures import InstanceData

    def split(scores, labels, boxes, valid_sizes):
        wh = torch.as_tensor(valid_sizes).flip(-1).repeat(1, 2)[:, None].float()
        boxes = torch.as_tensor(boxes) / wh
        return [InstanceData(scores=torch.as_tensor(s), labels=torch.as_tensor(l), bboxes=b)
                for s, l, b in zip(scores, labels, boxes)]

    return split


@pytest.fixture(scope='session')
def small_toy(perturb):
    """``build(config)`` → (cfg, detector): a toy ``config`` with 1 encoder and 2 decoder layers (exported in about a
    minute), random weights from seed 0, perturbed (:func:`perturb`)."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmddetr.registry import MODELS

    def build(config):
        cfg = Config.fromfile(config)
        cfg.model.backbone.init_cfg = None
        cfg.model.encoder.num_layers, cfg.model.decoder.num_layers = 1, 2
        torch.manual_seed(0)
        with DefaultScope.overwrite_default_scope('mmddetr'):
            detector = MODELS.build(cfg.model)
            detector.init_weights()
        return cfg, perturb(detector)

    return build
