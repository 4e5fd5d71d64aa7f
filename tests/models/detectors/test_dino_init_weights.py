"""mmddetr's DINO initialises as mmdet's DINO does with mmddetr's attention: the same weights from the same seed,
without touching mmdet's modules."""
import copy

import torch


def test_our_dino_init_weights_is_mmdets_on_our_attention():
    """mmdet's DINO re-initialises the deformable attention it finds by mmcv's class; with mmdet switched to ours for
    its build and init (the scoped ``mmdet_attention``, here only), it initialises what our DINO holds, in the same
    order: every weight equal bitwise. Our DINO's build and init leave mmdet's switch as they found it."""
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmddetr.models import DINO, MultiScaleDeformableAttention, mmdet_attention, mmdet_uses_mmddetr_attention
    from mmddetr.registry import MODELS

    ours_cfg = Config.fromfile('configs/toy/dino_r18_toy.py').model
    theirs_cfg = copy.deepcopy(ours_cfg)  # mmdet's detectors edit the config they are built from
    theirs_cfg.data_preprocessor.type = 'DetDataPreprocessor'  # mmdet's, for configs/_base_/fast_modules.py's types
    for coder in (theirs_cfg.encoder, theirs_cfg.decoder):
        coder.layer_cfg.pop('type')  # mmdet's coders build their own layer classes
    register_all_modules(init_default_scope=False)
    torch.manual_seed(0)
    with mmdet_attention(), DefaultScope.overwrite_default_scope('mmdet'):
        theirs = MMDET_MODELS.build(theirs_cfg)
        theirs.init_weights()
    assert type(theirs).__module__.startswith('mmdet.')
    assert any(type(m) is MultiScaleDeformableAttention for m in theirs.modules())
    assert not mmdet_uses_mmddetr_attention()  # the context put mmcv's back
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmddetr'):
        ours = MODELS.build(ours_cfg)
    ours.init_weights()
    assert type(ours) is DINO and not mmdet_uses_mmddetr_attention()
    attention = [m for m in ours.modules() if isinstance(m, MultiScaleDeformableAttention)]
    assert len(attention) == 6 and not any(m.sampling_offsets.weight.any() for m in attention)  # re-initialised
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state) == list(theirs_state)
    for key, value in theirs_state.items():
        assert torch.equal(ours_state[key], value), key
