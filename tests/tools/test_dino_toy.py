"""The toy DINO config (``mmddetr.DINO``: mmdet's DINO on our layers and attention) through tools/train.py and
tools/test.py: its training steps, denoising queries included, run on our op; its checkpoint loads into mmdet's own
DINO with mmcv's attention."""
import os.path as osp

import torch

from tool_runs import check_ok, load_checkpoint

DINO_TOY = 'configs/toy/dino_r18_toy.py'


def test_toy_dino_trains_validates_and_tests(run_tool, toy_options, tmp_path):
    work = str(tmp_path / 'train')
    proc = check_ok(run_tool('train.py', DINO_TOY, '--work-dir', work, '--cfg-options', *toy_options,
                             'train_cfg.max_iters=2'))
    log = proc.stdout + proc.stderr
    assert 'dn_loss_cls' in log and 'coco/bbox_mAP' in log and 'loss: nan' not in log
    checkpoint = osp.join(work, 'iter_2.pth')
    proc = check_ok(run_tool('test.py', DINO_TOY, checkpoint, '--work-dir', str(tmp_path / 'test'), '--cfg-options',
                             *toy_options))
    assert 'coco/bbox_mAP' in proc.stdout + proc.stderr

    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmddetr.models import MultiScaleDeformableAttention, mmdet_attention
    cfg = Config.fromfile(DINO_TOY)  # the same config keys built as mmdet's DINO, on mmcv's attention
    cfg.merge_from_dict({o.split('=')[0]: int(o.split('=')[1]) for o in toy_options if o.startswith('model.')})
    cfg.model.data_preprocessor.type = 'DetDataPreprocessor'  # mmdet's, for configs/_base_/fast_modules.py's types
    for coder in (cfg.model.encoder, cfg.model.decoder):
        coder.layer_cfg.pop('type')  # mmdet's coders build their own layer classes
    register_all_modules(init_default_scope=False)
    with mmdet_attention(mmddetr=False):
        with DefaultScope.overwrite_default_scope('mmdet'):
            mmdet_dino = MODELS.build(cfg.model)
    assert not any(isinstance(m, MultiScaleDeformableAttention) for m in mmdet_dino.modules())
    state = load_checkpoint(checkpoint)['state_dict']
    mmdet_dino.load_state_dict(state, strict=True)
    assert torch.equal(mmdet_dino.encoder.layers[0].self_attn.sampling_offsets.weight,
                       state['encoder.layers.0.self_attn.sampling_offsets.weight'])
