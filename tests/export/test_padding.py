"""What padding changes (eager; the export gives the eager predictions of the same padded batch,
test_onnx_parity.py), in our detector and in mmdet's DeformableDETR alike.

A padded image's predictions are not those it gets alone, because the backbone and the neck see the padding: the
backbone's convolutions near the image's bottom and right border read the padded area, which after the first layer
holds the responses to the image's border and the BatchNorm shift (zeros for the image alone), and the neck's
GroupNorm takes its statistics over the whole padded map. The attention reads no padded pixel: given the same
features on the valid part, the plain and refine transformers give the image alone's detections. In two-stage,
padded pixels are proposals too (memory zeroed, box at infinity, as invalid ones), so they can take top-k places.
"""
import copy
import os

import mmdet
import pytest
import torch
from torch import nn

MMDET_CONFIGS = os.path.join(os.path.dirname(mmdet.__file__), '.mim', 'configs', 'deformable_detr')
CONFIGS = {  # variant: our toy config (ResNet-18, 128 channels), mmdet's config (with ResNet-18 too: cheaper)
    'plain': ('configs/toy/deformable_detr_r18_toy.py', 'deformable-detr_r50_16xb2-50e_coco.py'),
    'refine': ('configs/toy/deformable_detr_r18_toy_refine.py', 'deformable-detr-refine_r50_16xb2-50e_coco.py'),
    'twostage': ('configs/toy/deformable_detr_r18_toy_refine_twostage.py',
                 'deformable-detr-refine-twostage_r50_16xb2-50e_coco.py'),
}
# an image of 96x160 alone, and padded to 192x256 in a batch with a larger one: sizes divisible by the backbone's
# stride (32), so that its convolutions and every level's mask line up with the image alone's; 321 keys, more than
# mmdet's two-stage takes proposals (300)
ALONE, PADDED = (96, 160), (192, 256)
STRIDES = (8, 16, 32, 64)


def _level_size(size, stride):
    """A level's (h, w): the backbone's and neck's ceil divisions."""
    return tuple(-(-s // stride) for s in size)


@pytest.fixture(scope='module')
def detector(perturb):
    """``build(variant, side)``: ours or mmdet's detector with random weights, 1 encoder and 2 decoder layers, built
    once per module (the tests change copies of it only)."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    built = {}

    def build(variant, side):
        if (variant, side) not in built:
            ours, theirs = CONFIGS[variant]
            cfg = Config.fromfile(ours if side == 'ours' else os.path.join(MMDET_CONFIGS, theirs))
            cfg.model.backbone.init_cfg = None
            cfg.model.encoder.num_layers, cfg.model.decoder.num_layers = 1, 2
            if side == 'ours':
                from mmddetr.registry import MODELS
            else:
                cfg.model.backbone.depth, cfg.model.neck.in_channels = 18, [128, 256, 512]
                from mmdet.registry import MODELS
                from mmdet.utils import register_all_modules
                register_all_modules(init_default_scope=False)
            torch.manual_seed(0)
            with DefaultScope.overwrite_default_scope('mmddetr' if side == 'ours' else 'mmdet'):
                model = MODELS.build(cfg.model)
                model.init_weights()
            assert type(model).__module__.startswith(f'{"mmddetr" if side == "ours" else "mmdet"}.models.')
            built[variant, side] = perturb(model).eval()
        return built[variant, side]

    return build


def _samples(shapes, pad):
    from mmdet.structures import DetDataSample
    return [DetDataSample(metainfo=dict(img_shape=s, ori_shape=s, batch_input_shape=pad, pad_shape=pad,
                                        scale_factor=(1.0, 1.0))) for s in shapes]


def _alone_and_padded(padded_batch):
    """The image alone (1, 3, 96, 160) and a batch (2, 3, 192, 256) in which it is the second one, padded."""
    images, _ = padded_batch([PADDED, ALONE])
    return images[1:, :, :ALONE[0], :ALONE[1]], images


@pytest.mark.parametrize('side', ['ours', 'mmdet'])
def test_padded_image_gets_other_predictions_than_alone(side, detector, padded_batch, detection_pairs):
    model = detector('plain', side)
    alone, padded = _alone_and_padded(padded_batch)
    with torch.no_grad():
        expected = model.predict(alone, _samples([ALONE], ALONE))[0].pred_instances
        got = model.predict(padded, _samples([PADDED, ALONE], PADDED))[1].pred_instances
    # at about the export's tolerance (scores 1e-4, boxes 0.01 px), most of the padded image's detections are none of
    # the image alone's
    same = detection_pairs(got, expected, score_atol=1e-4, box_atol=0.01)
    assert same.any(1).float().mean() < 0.5


def test_backbone_reads_the_padding_near_the_border(detector, padded_batch):
    backbone = detector('plain', 'ours').backbone
    assert type(backbone).__module__.startswith('mmdet.')  # mmdet's ResNet: what holds here holds in mmdet
    alone, padded = _alone_and_padded(padded_batch)
    with torch.no_grad():
        levels = list(zip(backbone(padded), backbone(alone)))
        # every level's valid part differs; the finest (stride 8) near the image's bottom and right border only, its
        # top-left quarter is the image alone's
        assert all((p[1:, :, :a.shape[2], :a.shape[3]] - a).abs().max() > 1e-3 for p, a in levels)
        (p, a), (h, w) = levels[0], _level_size(ALONE, 8)
        torch.testing.assert_close(p[1:, :, :h // 2, :w // 2], a[..., :h // 2, :w // 2], atol=1e-5, rtol=1e-5)
        # the padded area that the convolutions read is not zero after the first layer (stride 2): the first rows
        # below the image hold the responses to its border, the rows further down the BatchNorm's shift
        stem = backbone.relu(backbone.norm1(backbone.conv1(padded)))[1, :, ALONE[0] // 2:]
    bn = backbone.norm1
    shift = (bn.bias - bn.running_mean * bn.weight / (bn.running_var + bn.eps).sqrt()).relu()
    assert shift.abs().max() > 1e-3 and (stem[:, 0] - shift[:, None]).abs().max() > 0.1
    torch.testing.assert_close(stem[:, -1], shift[:, None].expand(-1, stem.shape[2]))


def test_neck_sees_the_padding_through_groupnorm(detector, padded_batch):
    model = detector('plain', 'ours')
    neck = model.neck
    assert type(neck).__module__.startswith('mmdet.')  # mmdet's ChannelMapper
    alone, _ = _alone_and_padded(padded_batch)
    with torch.no_grad():
        features = model.backbone(alone)
    # the image alone's backbone features, zero-padded as a padded batch's would be without the backbone's effect
    padded = []
    for f, stride in zip(features, STRIDES):
        pad_h, pad_w = _level_size(PADDED, stride)
        padded.append(nn.functional.pad(f, (0, pad_w - f.shape[3], 0, pad_h - f.shape[2])))

    def valid_part_and_alone(net):
        with torch.no_grad():
            return [(p[..., :a.shape[2], :a.shape[3]], a) for p, a in zip(net(padded), net(features))]

    # GroupNorm's mean and variance are over the whole padded map
    assert all((p - a).abs().max() > 1e-2 for p, a in valid_part_and_alone(neck))
    no_norm = copy.deepcopy(neck)
    for m in no_norm.modules():
        if hasattr(m, 'gn'):
            m.gn = nn.Identity()
    for p, a in valid_part_and_alone(no_norm):
        torch.testing.assert_close(p, a, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('side', ['ours', 'mmdet'])
@pytest.mark.parametrize('variant', list(CONFIGS))
def test_attention_reads_no_padded_pixel(variant, side, detector, detection_pairs, assert_same_detections):
    model = detector(variant, side)
    gen = torch.Generator().manual_seed(1)
    # random level features of the image alone; padded, the same on the valid part and random elsewhere
    alone, padded = [], []
    for stride in STRIDES:
        (h, w), (pad_h, pad_w) = _level_size(ALONE, stride), _level_size(PADDED, stride)
        alone.append(torch.randn(1, model.embed_dims, h, w, generator=gen))
        padded.append(torch.randn(2, model.embed_dims, pad_h, pad_w, generator=gen))
        padded[-1][1, :, :h, :w] = alone[-1][0]
    predictions, proposals_at_infinity = [], []
    for feats, samples, index in ((alone, _samples([ALONE], ALONE), 0),
                                  (padded, _samples([PADDED, ALONE], PADDED), 1)):
        with torch.no_grad():
            head_inputs = model.forward_transformer(tuple(feats), samples)
            predictions.append(model.bbox_head.predict(**head_inputs, batch_data_samples=samples)[index])
        # the decoder's first reference points: sigmoid(inf) = 1 for the proposals at infinity
        proposals_at_infinity.append(int((head_inputs['references'][0][index] == 1).all(-1).sum()))
    expected, got = predictions
    if variant == 'twostage':
        assert proposals_at_infinity[0] == 0 and proposals_at_infinity[1] > 0
        assert detection_pairs(got, expected, score_atol=1e-4, box_atol=0.01).any(1).float().mean() < 0.5
    else:
        assert proposals_at_infinity == [0, 0]
        assert_same_detections(got, expected, score_atol=1e-5, box_atol=1e-3)


def test_unpadded_batch_skips_the_masks_with_the_same_values(detector):
    model = detector('refine', 'ours')
    gen = torch.Generator().manual_seed(2)
    feats = tuple(torch.randn(2, model.embed_dims, *_level_size(ALONE, stride), generator=gen) for stride in STRIDES)
    assert model.batch_padding(_samples([ALONE, ALONE], ALONE), 'cpu') == (ALONE, None)
    input_shape, valid_sizes = model.batch_padding(_samples([ALONE, (64, 160)], ALONE), 'cpu')
    assert input_shape == ALONE and valid_sizes.tolist() == [list(ALONE), [64, 160]]
    with torch.no_grad():
        skipped = model.forward_transformer_from_sizes(feats, ALONE, None)
        all_false = model.forward_transformer_from_sizes(feats, ALONE, torch.tensor([ALONE, ALONE]))
    torch.testing.assert_close(skipped['hidden_states'], all_false['hidden_states'], atol=1e-5, rtol=1e-5)
    for a, b in zip(skipped['references'], all_false['references']):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
