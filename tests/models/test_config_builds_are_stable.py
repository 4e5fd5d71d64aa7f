"""What a shipped config builds follows from the config alone: in a fresh process, every shipped config built, then
``mmddetr.mmdet_ops`` imported and the other tools' entry points run (mmdet's own DETRs built from mmdet's configs,
which also rewrites mmcv's ``MultiheadAttention`` default dropout, tools/benchmark_model.py's builds of mmdet's toy
detector and ours, a Runner, mmdet's ``register_all_modules`` making 'mmdet' the default scope), then every config
built again: the same module classes and dropout rates, and for the toy configs the same initial weights, predictions
and losses, bitwise. mmdet's model registry holds the same names before and after: the benchmark builds its mmdet
subclass from the class itself, registering nothing."""
import os
import subprocess
import sys

import torch
from toy_configs import MMDET_DETR_TOY

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = r'''
import glob
import inspect
import os
import sys

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

MMLogger.get_current_instance().setLevel('WARNING')  # no per-parameter init report
CONFIGS = sorted(c for c in glob.glob('configs/**/*.py', recursive=True) if '_base_' not in c.split(os.sep))
MAIN = 'configs/toy/deformable_detr_r18_toy_refine_twostage.py'


def images():
    """Two uint8 images and their boxes, as the pipeline packs them."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for h, w in ((96, 128), (64, 112)):
        inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen))
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(bboxes=torch.tensor([[4., 6., 50., 40.], [20., 10., 90., 60.]]),
                                           labels=torch.tensor([1, 3]))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def setting(module):
    """A module's dropout rate, if it has one."""
    if isinstance(module, torch.nn.Dropout):
        return module.p
    if isinstance(module, torch.nn.MultiheadAttention):
        return module.dropout
    return getattr(module, 'drop_prob', None)  # mmcv's DropPath


def record(config):
    """The config's model as built from seed 0: every module's class and dropout rate; for the toy configs (cheap),
    also its weights after init_weights, its predictions through the data preprocessor and its training losses."""
    from mmddetr.registry import MODELS
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    result = dict(modules=[(name, f'{type(m).__module__}.{type(m).__qualname__}', setting(m))
                           for name, m in model.named_modules()])
    if config.startswith('configs/toy/'):
        model.init_weights()
        result['weights'] = {k: v.clone() for k, v in model.state_dict().items()}
        with torch.no_grad():
            result['predictions'] = [(r.pred_instances.scores, r.pred_instances.labels, r.pred_instances.bboxes)
                                     for r in model.eval().test_step(images())]
        model.train()
        torch.manual_seed(1)  # DINO's denoising queries
        losses = model(**model.data_preprocessor(images(), True), mode='loss')  # a training step's forward
        result['losses'] = {k: v.detach() for k, v in losses.items()}
    return result


def other_entry_points(work_dir):
    """What other tools run in a process before or between builds of ours."""
    import mmddetr.mmdet_ops  # noqa: F401  mmdet's DETR family now builds our attention
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmdet.utils import register_all_modules

    from mmddetr.benchmark import build_detector
    from mmddetr.engine import build_runner, load_config
    build_runner(load_config(MAIN, work_dir=work_dir))  # sets the default scope, seeds, the logger
    build_detector('ours', MAIN)  # tools/benchmark_model.py's toy row: mmdet's toy model (its subclass), then ours
    mmdet_configs = os.path.join(os.path.dirname(__import__('mmdet').__file__), '.mim', 'configs')
    register_all_modules(init_default_scope=False)
    for path in ('dino/dino-4scale_r50_8xb2-12e_coco.py', 'deformable_detr/deformable-detr_r50_16xb2-50e_coco.py'):
        cfg = Config.fromfile(os.path.join(mmdet_configs, path))
        cfg.model.backbone.init_cfg = None
        with DefaultScope.overwrite_default_scope('mmdet'):
            MMDET_MODELS.build(cfg.model)
    register_all_modules(init_default_scope=True)  # the default scope: mmdet


before = {config: record(config) for config in CONFIGS}
from mmdet.registry import MODELS as MMDET_MODELS  # noqa: E402

mmdet_models = sorted(MMDET_MODELS.module_dict)
other_entry_points(sys.argv[2])

from mmcv.cnn.bricks.transformer import MultiheadAttention  # noqa: E402

from mmddetr.models import mmdet_uses_mmddetr_attention  # noqa: E402
evidence = dict(mmdet_uses_ours=mmdet_uses_mmddetr_attention(),
                scope=DefaultScope.get_current_instance().scope_name,
                mmcv_default_drop=dict(inspect.signature(MultiheadAttention).parameters['dropout_layer'].default),
                mmdet_models_kept=sorted(MMDET_MODELS.module_dict) == mmdet_models)
after = {config: record(config) for config in CONFIGS}
torch.save(dict(before=before, after=after, evidence=evidence), sys.argv[1])
'''


def test_every_config_builds_the_same_model_whatever_ran_before(tmp_path):
    out = tmp_path / 'records.pt'
    proc = subprocess.run([sys.executable, '-c', SCRIPT, str(out), str(tmp_path / 'work_dir')], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = torch.load(out, weights_only=False)
    # the process did change: mmdet on our attention, mmdet's default scope, mmcv's default dropout rewritten by the
    # deprecated ``dropout`` of mmdet's Deformable DETR config
    assert records['evidence'] == dict(mmdet_uses_ours=True, scope='mmdet',
                                       mmcv_default_drop=dict(type='Dropout', drop_prob=0.1), mmdet_models_kept=True)
    before, after = records['before'], records['after']
    assert len(before) == 12 and sum('predictions' in r for r in before.values()) == 7
    for config, first in before.items():
        second = after[config]
        assert second['modules'] == first['modules'], config
        assert config == MMDET_DETR_TOY or any(name == 'data_preprocessor' and cls.endswith(
            'ChannelsLastDetDataPreprocessor') for name, cls, _ in first['modules']), config
        if 'predictions' not in first:
            continue
        assert list(second['weights']) == list(first['weights'])
        for key, value in first['weights'].items():
            assert torch.equal(second['weights'][key], value), (config, key)
        for one, other in zip(first['predictions'], second['predictions']):
            assert len(one[0]) == 100 and all(torch.equal(a, b) for a, b in zip(one, other)), config
        assert list(second['losses']) == list(first['losses'])
        for key, value in first['losses'].items():
            assert torch.equal(second['losses'][key], value), (config, key)
