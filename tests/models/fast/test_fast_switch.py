"""configs/_base_/fast_modules.py, the one switch: every shipped config built with it (as shipped) and without it
(the line dropped from configs/deformable_detr_r50.py's _base_, as the docs say) holds the fast or the plain modules,
with the same parameter names, the same initial weights from a seed, and the same outputs from the same weights."""
import copy
import glob
import os
import shutil

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from toy_configs import MMDET_DETR_TOY
from torch.utils._pytree import tree_leaves

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CONFIGS = sorted(os.path.relpath(path, os.path.join(REPO, 'configs'))
                 for path in glob.glob(os.path.join(REPO, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in path.split(os.sep))
SWITCH = "'./_base_/fast_modules.py'"


@pytest.fixture(scope='module')
def plain_configs(tmp_path_factory):
    """A copy of configs/ whose deformable_detr_r50.py (every other config's base) has the fast modules' line
    dropped from its _base_."""
    root = tmp_path_factory.mktemp('plain') / 'configs'
    shutil.copytree(os.path.join(REPO, 'configs'), root)
    path = root / 'deformable_detr_r50.py'
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if SWITCH not in line]
    assert len(kept) == len(lines) - 1
    path.write_text(''.join(kept))
    return root


def _build(path):
    """The config's model as built from seed 0 (no ``init_weights``: mmengine's logging of it takes seconds)."""
    from mmddetr.registry import MODELS
    cfg = Config.fromfile(str(path))
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return MODELS.build(cfg.model)


@pytest.mark.parametrize('config', CONFIGS)
def test_fast_and_plain_builds_have_the_same_parameters_and_outputs(config, plain_configs, det_batch):
    from mmcv.cnn.bricks.transformer import FFN, MultiheadAttention
    from mmdet.models.data_preprocessors import DetDataPreprocessor

    from mmddetr.models import (DeformableDetrTransformerDecoderLayer, DeformableDetrTransformerEncoderLayer,
                                MultiScaleDeformableAttention, fast)
    fast_model = _build(os.path.join(REPO, 'configs', config))
    plain_model = _build(plain_configs / config)
    fast_state, plain_state = fast_model.state_dict(), plain_model.state_dict()
    assert list(fast_state) == list(plain_state)
    for key, value in fast_state.items():  # the same initial weights from the seed
        assert key == 'level_embed' or torch.equal(plain_state[key], value), key  # level_embed: torch.Tensor(...)
    if os.path.join('configs', config) == MMDET_DETR_TOY:  # mmdet's DETR: nothing of ours for the switch to change
        assert [type(m) for m in fast_model.modules()] == [type(m) for m in plain_model.modules()]
        assert not [m for m in fast_model.modules() if type(m).__module__.startswith('mmddetr')]
        return

    assert type(fast_model.data_preprocessor) is fast.ChannelsLastDetDataPreprocessor
    assert type(plain_model.data_preprocessor) is DetDataPreprocessor
    for layer in fast_model.encoder.layers:
        assert type(layer) is fast.FastDeformableDetrTransformerEncoderLayer
        assert (type(layer.self_attn), type(layer.ffn)) == (fast.FastMultiScaleDeformableAttention, fast.FastFFN)
    for layer in fast_model.decoder.layers:
        assert type(layer) is fast.FastDeformableDetrTransformerDecoderLayer
        assert (type(layer.self_attn), type(layer.cross_attn), type(layer.ffn)) == (
            fast.FastMultiheadAttention, fast.FastMultiScaleDeformableAttention, fast.FastFFN)
    for layer in plain_model.encoder.layers:
        assert type(layer) is DeformableDetrTransformerEncoderLayer
        assert (type(layer.self_attn), type(layer.ffn)) == (MultiScaleDeformableAttention, FFN)
    for layer in plain_model.decoder.layers:
        assert type(layer) is DeformableDetrTransformerDecoderLayer
        assert (type(layer.self_attn), type(layer.cross_attn), type(layer.ffn)) == (
            MultiheadAttention, MultiScaleDeformableAttention, FFN)
    assert not [m for m in plain_model.modules() if type(m).__module__.startswith('mmddetr.models.fast')]
    dropouts = [(type(f).__name__, type(p).__name__, f.p == p.p)
                for f, p in zip(fast_model.modules(), plain_model.modules()) if isinstance(f, torch.nn.Dropout)]
    assert all(same_p for _, _, same_p in dropouts) and ('FastDropout', 'Dropout', True) in dropouts

    if not config.startswith('toy'):  # the toy configs run the same layers on other sizes, in a fraction of the time
        return
    with torch.no_grad():  # off the init: zero offsets and attention logits would leave paths unused
        gen = torch.Generator().manual_seed(1)
        fast_model.level_embed.normal_(generator=gen)  # uninitialised memory until init_weights
        for p in fast_model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    plain_model.load_state_dict(fast_model.state_dict(), strict=True)
    num_classes = fast_model.bbox_head.num_classes
    # 256 encoder pixels: toy DINO selects its 100 queries among them
    inputs, samples = det_batch(sizes=((96, 128), (64, 112)), num_gts=(2, 1), num_classes=num_classes)
    fast_model.eval(), plain_model.eval()
    with torch.no_grad():
        fast_out = tree_leaves(fast_model._forward(inputs, copy.deepcopy(samples)))
        plain_out = tree_leaves(plain_model._forward(inputs, copy.deepcopy(samples)))
    assert len(fast_out) == len(plain_out) > 0
    for f, p in zip(fast_out, plain_out):
        torch.testing.assert_close(f, p, atol=1e-5, rtol=1e-5)
    fast_model.train(), plain_model.train()  # no dropout: the training losses agree too
    losses = []
    for model in (fast_model, plain_model):
        torch.manual_seed(2)  # DINO's denoising queries
        losses.append(model.loss(inputs, copy.deepcopy(samples)))
    assert list(losses[0]) == list(losses[1])
    for key, value in losses[0].items():
        torch.testing.assert_close(losses[1][key], value, atol=1e-5, rtol=1e-5, msg=key)


def test_a_config_of_ones_own_sets_the_three_types_back(plain_configs):
    """layout.md: the three types set back in a config that inherits a shipped one build what dropping the switch
    builds."""
    main = 'toy/deformable_detr_r18_toy_refine_twostage.py'
    own = plain_configs.parent / 'own.py'
    own.write_text(f"_base_ = '{os.path.join(REPO, 'configs', main)}'\n"
                   "model = dict(data_preprocessor=dict(type='DetDataPreprocessor'),\n"
                   "             encoder=dict(layer_cfg=dict(type='DeformableDetrTransformerEncoderLayer')),\n"
                   "             decoder=dict(layer_cfg=dict(type='DeformableDetrTransformerDecoderLayer')))\n")
    ours, plain = _build(own), _build(plain_configs / main)
    assert [(n, type(m)) for n, m in ours.named_modules()] == [(n, type(m)) for n, m in plain.named_modules()]
    assert not [m for m in ours.modules() if type(m).__module__.startswith('mmddetr.models.fast')]
