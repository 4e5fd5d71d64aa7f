"""What README.md, docs/tools.md and docs/robustness.md say every shipped config (and each named one) holds."""
import glob
import os

import pytest
import torch
from mmengine.config import Config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(os.path.relpath(path, REPO) for path in glob.glob(os.path.join(REPO, 'configs', '**', '*.py'),
                                                                     recursive=True)
                 if '_base_' not in path.split(os.sep))
PAPER = ['configs/deformable_detr_r50.py', 'configs/deformable_detr_r50_refine.py',
         'configs/deformable_detr_r50_refine_twostage.py', 'configs/deformable_detr_r50_single_scale.py']
TOY = [c for c in CONFIGS if c.startswith('configs/toy/')]
MAIN = 'configs/toy/deformable_detr_r18_toy_refine_twostage.py'
# the toy configs of tools/paper_tables.py besides MAIN: the main job's recipe, other models
PAPER_TOY = ['configs/toy/deformable_detr_r18_toy_single_scale.py', 'configs/toy/deformable_detr_r18_toy_fpn.py',
             'configs/toy/detr_r18_toy.py']


def _load(config):
    return Config.fromfile(os.path.join(REPO, config))


def _build(config):
    """The config's model as built (no weight initialisation, no pretrained download)."""
    from mmengine.registry import DefaultScope

    from mmddetr.registry import MODELS
    cfg = _load(config)
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmddetr'):
        return MODELS.build(cfg.model)


def test_the_configs_are_the_ones_the_docs_name():
    # the loops below run over these: a glob that found nothing would test nothing
    assert set(PAPER) < set(CONFIGS) and MAIN in TOY and set(PAPER_TOY) < set(TOY) and len(TOY) == 7
    assert 'configs/dino/dino_4scale_r50_12e.py' in CONFIGS and len(CONFIGS) == 12


@pytest.mark.parametrize('config', CONFIGS)
def test_every_config_carries_the_runtime_hooks(config):
    """tools.md: every config carries RNGStateHook; robustness.md: NumClassCheckHook in every config, every
    CheckpointHook writes atomically, NonFiniteLossHook (action raise) and CheckpointWeightsHook (allow_missing off)
    are registered; README: default_scope 'mmddetr'. Each type must resolve in that scope to the documented class."""
    from mmdet.engine.hooks import NumClassCheckHook
    from mmengine.registry import DefaultScope

    from mmddetr.engine import CheckpointWeightsHook, NonFiniteLossHook, RNGStateHook
    from mmddetr.registry import HOOKS

    cfg = _load(config)
    assert cfg.default_scope == 'mmddetr'
    with DefaultScope.overwrite_default_scope('mmddetr'):
        custom = [HOOKS.get(hook['type']) for hook in cfg.custom_hooks]
        assert RNGStateHook in custom and NumClassCheckHook in custom
        hooks = cfg.default_hooks
        assert HOOKS.get(hooks.nonfinite_loss.type) is NonFiniteLossHook and hooks.nonfinite_loss.action == 'raise'
        assert HOOKS.get(hooks.checkpoint_weights.type) is CheckpointWeightsHook
        assert hooks.checkpoint_weights.allow_missing is False
    assert hooks.checkpoint.backend_args == dict(backend='atomic_local')
    # robustness.md: max_keep_ckpts 2 in the toy configs, all checkpoints kept (unset) in the paper ones
    assert hooks.checkpoint.get('max_keep_ckpts') == (2 if config in TOY else None)


@pytest.mark.parametrize('config', PAPER)
def test_paper_configs_have_the_papers_schedule_and_data(config):
    """README / detector.md: COCO 2017 at data/coco/, AdamW 2e-4, weight decay 1e-4, x0.1 for the backbone, sampling
    offsets and reference points, L2 clip 0.1, 50 epochs with x0.1 after 40, for a total batch of 32."""
    cfg = _load(config)
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW', 2e-4, 1e-4)
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=0.1, norm_type=2)
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys == {
        key: dict(lr_mult=0.1) for key in ('backbone', 'sampling_offsets', 'reference_points')}
    assert cfg.train_cfg.type == 'EpochBasedTrainLoop' and cfg.train_cfg.max_epochs == 50
    [scheduler] = cfg.param_scheduler
    assert (scheduler.type, scheduler.milestones, scheduler.gamma, scheduler.by_epoch) == ('MultiStepLR', [40], 0.1,
                                                                                           True)
    assert cfg.auto_scale_lr.base_batch_size == 32
    for split in ('train', 'val', 'test'):
        assert cfg[f'{split}_dataloader'].dataset.data_root == 'data/coco/'
        assert cfg[f'{split}_dataloader'].dataset.type == 'CocoDataset'


def test_paper_learning_rates_reach_the_parameters_they_name():
    """The x0.1 keys match parameters of the model (a misspelt key would match none): the optimizer's groups give
    2e-5 to exactly the backbone, sampling-offset and reference-point parameters, 2e-4 to the rest."""
    from mmengine.optim import build_optim_wrapper

    model = _build(PAPER[0])
    optimizer = build_optim_wrapper(model, _load(PAPER[0]).optim_wrapper).optimizer
    lr_of = {id(p): group['lr'] for group in optimizer.param_groups for p in group['params']}
    slow = {key: 0 for key in ('backbone', 'sampling_offsets', 'reference_points')}
    for name, p in model.named_parameters():
        if not p.requires_grad:  # the frozen stem and first stage: not optimised
            assert name.startswith('backbone.'), name
            continue
        keys = [key for key in slow if key in name]
        for key in keys:
            slow[key] += 1
        assert lr_of[id(p)] == pytest.approx(2e-5 if keys else 2e-4), name
    assert all(slow.values()), slow


@pytest.mark.parametrize('config, refine, two_stage', [
    ('configs/toy/deformable_detr_r18_toy.py', False, False),
    ('configs/toy/deformable_detr_r18_toy_refine.py', True, False),
    (MAIN, True, True),
    ('configs/toy/dino_r18_toy.py', True, True),
    (PAPER_TOY[0], False, False),
    (PAPER_TOY[1], False, False),
])
def test_toy_configs_are_their_variants_from_scratch_without_dropout(config, refine, two_stage):
    """README: plain, refine, refine + two-stage (and DINO's toy), ResNet-18 from scratch, 3 + 3 layers, 100
    queries, five classes; 'The toy configs have no dropout': every dropout probability of the built model is 0."""
    from mmcv.cnn.bricks.drop import DropPath

    cfg = _load(config)
    assert cfg.model.backbone.depth == 18 and cfg.model.backbone.init_cfg is None
    model = _build(config)
    assert (model.with_box_refine, model.as_two_stage) == (refine, two_stage)
    assert model.num_queries == 100 and model.bbox_head.num_classes == 5
    assert len(model.encoder.layers) == len(model.decoder.layers) == 3
    dropouts = 0
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Dropout):  # FastDropout too
            dropouts += 1
            assert m.p == 0, name
        elif isinstance(m, torch.nn.MultiheadAttention):
            assert m.dropout == 0, name
        elif isinstance(m, DropPath):
            assert m.drop_prob == 0, name
    assert dropouts >= 9  # the attention's, the FFNs' and the self-attentions' dropouts were all seen


def test_main_toy_config_is_the_readmes():
    """README: half-width ResNet-18, embed dims 128, images upscaled to 384 px, batch 4, AdamW 5e-4 with x0.1 for the
    last sixth of 1,200 iterations, clip 0.1, a log line every 10 iterations, a validation every 1,200 images, an EMA
    of the weights (mmengine's EMAHook), seed 0."""
    cfg = _load(MAIN)
    model = _build(MAIN)
    assert model.backbone.layer1[0].conv1.out_channels == 32  # ResNet-18's 64 halved
    assert model.embed_dims == 128 and model.bbox_head.embed_dims == 128
    for pipeline in (cfg.train_pipeline, cfg.test_pipeline, cfg.train_dataloader.dataset.pipeline,
                     cfg.val_dataloader.dataset.pipeline, cfg.test_dataloader.dataset.pipeline):
        [resize] = [t for t in pipeline if t['type'] == 'Resize']
        assert resize['scale'] == (384, 384) and resize['keep_ratio']
    batch = cfg.train_dataloader.batch_size
    assert batch == 4 and cfg.auto_scale_lr.base_batch_size == 4
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr) == ('AdamW', 5e-4) and cfg.optim_wrapper.clip_grad.max_norm == 0.1
    assert cfg.train_cfg.max_iters == 1200
    [drop] = [s for s in cfg.param_scheduler if s['type'] == 'MultiStepLR']
    assert drop['milestones'] == [1000] and drop['gamma'] == 0.1 and drop['end'] == 1200
    assert cfg.train_cfg.val_interval * batch == 1200 and cfg.default_hooks.logger.interval == 10
    assert cfg.randomness.seed == 0
    ema = [hook for hook in cfg.custom_hooks if hook['type'] == 'EMAHook']
    assert ema == [dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.02, gamma=50, update_buffers=True,
                        priority=49)]


def _flat(node, path=''):
    """{dotted key: leaf} of a config dict."""
    if isinstance(node, dict):
        return {k: v for key, child in node.items() for k, v in _flat(child, f'{path}.{key}' if path else key).items()}
    if isinstance(node, list) and node and all(isinstance(x, dict) for x in node):
        return {k: v for i, child in enumerate(node) for k, v in _flat(child, f'{path}.{i}').items()}
    return {path: node}


@pytest.mark.parametrize('config', PAPER_TOY)
def test_paper_toy_configs_keep_the_main_jobs_recipe(config):
    """README / docs/paper.md: the toy DETR, single-scale and FPN configs train as the main job does (data, 384 px,
    batch 4, optimizer, schedule, EMA, hooks, seed) with the same half-width ResNet-18 from scratch; only the model
    differs, the backbone by its output stages."""
    cfg, main = _load(config), _load(MAIN)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator', 'optim_wrapper',
                'param_scheduler', 'train_cfg', 'custom_hooks', 'default_hooks', 'randomness', 'auto_scale_lr'):
        assert cfg[key] == main[key], key
    backbone = {k: v for k, v in _flat(cfg.model.backbone).items() if k != 'type'}
    main_backbone = {k: v for k, v in _flat(main.model.backbone).items() if k != 'type'}
    assert {k for k in backbone if backbone[k] != main_backbone.get(k)} <= {'out_indices'}
    assert backbone.keys() == main_backbone.keys() and cfg.model.backbone.type in ('ResNet', 'mmdet.ResNet')


def test_toy_detr_is_mmdets_detr_at_the_toy_size():
    """README: configs/toy/detr_r18_toy.py is mmdet 3.3.0's DETR config (its classes, losses, matching costs) with
    only the sizes of the toy configs changed: half-width ResNet-18 from scratch, embed dims 128, FFN 512, 3 + 3
    layers, no dropout, five classes; 100 queries as mmdet's."""
    from mmdet.models.detectors import DETR
    from mmdet.models.task_modules import HungarianAssigner

    from mmddetr.benchmark import mmdet_config_path
    ours = _flat(_load('configs/toy/detr_r18_toy.py').model)
    mmdet = _flat(Config.fromfile(mmdet_config_path('detr/detr_r50_8xb2-150e_coco.py')).model)
    ours = {k: v.replace('mmdet.', '') if k.endswith('type') else v for k, v in ours.items()}
    assert ours.keys() - mmdet.keys() == {'backbone.base_channels', 'backbone.init_cfg'}  # half width, from scratch
    assert mmdet.keys() - ours.keys() == {'backbone.init_cfg.type', 'backbone.init_cfg.checkpoint'}
    changed = {k for k in ours.keys() & mmdet.keys() if ours[k] != mmdet[k]}
    sizes = {'backbone.depth', 'backbone.frozen_stages', 'backbone.norm_cfg.requires_grad', 'backbone.norm_eval',
             'neck.in_channels', 'neck.out_channels', 'positional_encoding.num_feats',
             'bbox_head.num_classes', 'bbox_head.embed_dims', 'encoder.num_layers', 'decoder.num_layers'}
    per_layer = {f'{part}.layer_cfg.{sub}.{key}' for part, subs in (
        ('encoder', ('self_attn_cfg', 'ffn_cfg')), ('decoder', ('self_attn_cfg', 'cross_attn_cfg', 'ffn_cfg')))
        for sub in subs for key in ('embed_dims', 'dropout', 'feedforward_channels', 'ffn_drop')}
    assert changed - sizes - per_layer == set() and sizes <= changed
    model = _build('configs/toy/detr_r18_toy.py')
    assert type(model) is DETR and type(model.bbox_head.assigner) is HungarianAssigner
    assert model.num_queries == 100 and len(model.encoder.layers) == len(model.decoder.layers) == 3
    assert model.backbone.layer1[0].conv1.out_channels == 32 and model.embed_dims == 128
    assert model.bbox_head.num_classes == 5 and ours['backbone.init_cfg'] is None  # no pretrained weights
    assert all(m.p == 0 for m in model.modules() if isinstance(m, torch.nn.Dropout))
