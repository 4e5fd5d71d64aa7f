"""Scope 'mmddetr' resolves mmdet's names, and other scopes reach ours as 'mmddetr.<Name>'."""
import subprocess
import sys


def test_mmdet_names_resolve_in_our_scope_in_a_fresh_process():
    # a fresh interpreter: nothing but mmddetr imported, so mmdet's modules must come through our registries
    code = ('from mmddetr.registry import MODELS, DATASETS, TRANSFORMS, METRICS, VISUALIZERS, HOOKS\n'
            'assert MODELS.get("ResNet").__module__.startswith("mmdet.")\n'
            'assert MODELS.get("ChannelMapper") and MODELS.get("FocalLoss") and MODELS.get("FFN")\n'
            'assert DATASETS.get("CocoDataset") and TRANSFORMS.get("PackDetInputs") and METRICS.get("CocoMetric")\n'
            'assert VISUALIZERS.get("DetLocalVisualizer") and HOOKS.get("DetVisualizationHook")\n'
            'assert MODELS.get("DeformableDETR").__module__.startswith("mmddetr.")\n')
    subprocess.run([sys.executable, '-c', code], check=True)


def test_other_scopes_reach_ours_by_prefix():
    from mmdet.registry import MODELS, TASK_UTILS
    from mmengine.registry import DefaultScope

    import mmddetr.models as ours
    with DefaultScope.overwrite_default_scope('mmdet'):
        assert MODELS.get('mmddetr.DeformableDETR') is ours.DeformableDETR
        assert MODELS.get('mmddetr.MultiScaleDeformableAttention') is ours.MultiScaleDeformableAttention
        assert TASK_UTILS.get('mmddetr.HungarianAssigner') is ours.HungarianAssigner
        assert MODELS.get('DeformableDETR') is not ours.DeformableDETR  # mmdet's own stays mmdet's


def test_every_mmdet_registry_has_a_child_of_ours():
    """detector.md: 'mmddetr.registry holds child registries of every mmdet registry' (mmdet's own, not the
    ``MMENGINE_*`` aliases it re-exports)."""
    from mmdet import registry as mmdet_registry
    from mmengine.registry import Registry

    from mmddetr import registry as ours
    names = [name for name, value in vars(mmdet_registry).items()
             if isinstance(value, Registry) and not name.startswith('MMENGINE_')]
    assert len(names) == 20  # mmdet 3.3.0's: a lookup that found none would check nothing
    for name in names:
        child = getattr(ours, name, None)
        assert isinstance(child, Registry), name
        assert child.parent is getattr(mmdet_registry, name) and child.scope == 'mmddetr', name
        assert child.parent.children['mmddetr'] is child, name


def test_components_are_registered_in_our_scope():
    """detector.md: the components are each registered (and usable alone): every class ``mmddetr.models`` exports is
    ours and found by its name in scope 'mmddetr' (modules in MODELS, the assigner and match costs in TASK_UTILS),
    and other scopes reach it as 'mmddetr.<Name>'."""
    import inspect

    from mmdet.registry import MODELS as MMDET_MODELS
    from mmdet.registry import TASK_UTILS as MMDET_TASK_UTILS
    from mmengine.registry import DefaultScope
    from torch import nn

    from mmddetr import models
    from mmddetr.registry import MODELS, TASK_UTILS
    classes = [getattr(models, name) for name in models.__all__ if inspect.isclass(getattr(models, name))]
    assert {models.DeformableDETR, models.DINO, models.DeformableDETRHead, models.TwoStageProposalHead,
            models.DeformableDetrTransformerEncoder, models.DeformableDetrTransformerEncoderLayer,
            models.DeformableDetrTransformerDecoder, models.DeformableDetrTransformerDecoderLayer,
            models.DinoTransformerDecoder, models.MultiScaleDeformableAttention, models.FastMultiheadAttention,
            models.HungarianAssigner} <= set(classes)
    for cls in classes:
        ours, theirs = (MODELS, MMDET_MODELS) if issubclass(cls, nn.Module) else (TASK_UTILS, MMDET_TASK_UTILS)
        assert cls.__module__.startswith('mmddetr.'), cls
        assert ours.get(cls.__name__) is cls, cls
        with DefaultScope.overwrite_default_scope('mmdet'):
            assert theirs.get(f'mmddetr.{cls.__name__}') is cls, cls
