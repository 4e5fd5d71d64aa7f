"""The channels-last data preprocessor: mmdet's values in oneDNN's layout on CPU, and a backbone that gives the same
features and gradients in that layout."""
import copy

import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.structures import DetDataSample
from mmengine.config import Config

from mmddetr.models.fast import ChannelsLastDetDataPreprocessor

TOY = 'configs/toy/deformable_detr_r18_toy.py'


def _data():
    """Two uint8 images of different sizes, as the test pipeline packs them."""
    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for h, w in ((64, 96), (48, 80)):
        inputs.append(torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8))
        samples.append(DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0))))
    return dict(inputs=inputs, data_samples=samples)


def test_channels_last_preprocessor_gives_mmdets_values_channels_last_and_the_detector_runs_on_them(build_detector):
    model = build_detector(TOY)
    assert type(model.data_preprocessor) is ChannelsLastDetDataPreprocessor
    args = {k: v for k, v in Config.fromfile(TOY).model.data_preprocessor.items() if k != 'type'}
    plain = DetDataPreprocessor(**args)
    for training in (True, False):
        ours = model.data_preprocessor(copy.deepcopy(_data()), training)
        theirs = plain(copy.deepcopy(_data()), training)
        assert ours['inputs'].is_contiguous(memory_format=torch.channels_last)
        assert not theirs['inputs'].is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(ours['inputs'], theirs['inputs'])
        for o, t in zip(ours['data_samples'], theirs['data_samples']):
            assert o.metainfo == t.metainfo
    layouts = []
    model.backbone.register_forward_pre_hook(
        lambda _, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    results = model.eval().test_step(_data())  # preprocessor, then predict
    assert layouts == [True] and len(results) == 2


def test_backbone_gives_the_same_features_and_gradients_channels_last(build_detector, det_batch):
    """The features agree with the default layout's to float32 rounding (training-mode batch norm sums its batch
    statistics in another order), the backbone's gradients in float64 to float64 rounding."""
    backbone = build_detector('configs/toy/deformable_detr_r18_toy_refine_twostage.py').backbone  # half width
    inputs, _ = det_batch(sizes=((64, 96), (48, 96)))
    channels_last = inputs.contiguous(memory_format=torch.channels_last)
    for f, d in zip(backbone(channels_last), backbone(inputs)):
        torch.testing.assert_close(f, d, atol=1e-4, rtol=1e-4)
    backbone.double()
    grads = []
    for images in (channels_last, inputs):
        backbone.zero_grad()
        feats = backbone(images.double())
        sum((f * torch.randn(f.shape, generator=torch.Generator().manual_seed(0))).sum() for f in feats).backward()
        grads.append([p.grad.clone() for p in backbone.parameters()])
    for fast_grad, default_grad in zip(*grads):
        torch.testing.assert_close(fast_grad, default_grad, atol=1e-9, rtol=1e-7)
