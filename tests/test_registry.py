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
