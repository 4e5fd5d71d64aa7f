"""Importing mmddetr.ops and the converters (mmddetr.convert.hf, official, common) needs torch alone; importing mmddetr
has no side effect."""
import subprocess
import sys

import pytest


@pytest.mark.parametrize('module', ['mmddetr', 'mmddetr.ops', 'mmddetr.convert.hf', 'mmddetr.convert.official',
                                    'mmddetr.convert.common'])
def test_import_loads_no_openmmlab_package_and_changes_nothing(module):
    code = ('import sys, torch\n'
            'before = set(map(repr, torch.serialization.get_safe_globals()))\n'
            f'import {module}\n'
            'loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("mmdet", "mmengine", "mmcv", "cv2"))\n'
            'assert not loaded, loaded\n'
            'assert set(map(repr, torch.serialization.get_safe_globals())) == before\n')
    subprocess.run([sys.executable, '-c', code], check=True)


def test_export_imports_no_onnx_package_until_asked():
    """layout.md: only mmddetr.export.onnx, the op's translation it imports (ms_deform_attn_onnx) and the ONNX
    Runtime and OpenVINO detectors (onnxruntime_detector, openvino_detector) import the export extra's packages: every
    other module of mmddetr imports none of them."""
    code = ('import importlib, pkgutil, sys\n'
            'import mmddetr\n'
            'onnx_modules = {"mmddetr.export.onnx", "mmddetr.export.ms_deform_attn_onnx",\n'
            '                "mmddetr.export.onnxruntime_detector", "mmddetr.export.openvino_detector"}\n'
            'names = [m.name for m in pkgutil.walk_packages(mmddetr.__path__, "mmddetr.")]\n'
            'names = [name for name in names if name not in onnx_modules]\n'
            'assert {"mmddetr.models", "mmddetr.engine", "mmddetr.datasets", "mmddetr.export.detector",\n'
            '        "mmddetr.export.runtime_detector"} <= set(names)\n'
            'for name in names:\n'
            '    importlib.import_module(name)\n'
            'extra = ("onnx", "onnxscript", "onnxruntime", "openvino")\n'
            'loaded = sorted(m for m in sys.modules if m.split(".")[0] in extra)\n'
            'assert not loaded, loaded\n'
            'import mmddetr.export.onnx\n'
            'assert {"onnx", "onnxscript", "onnxruntime"} <= set(sys.modules)\n'
            'import mmddetr.export.openvino_detector\n'
            'assert "openvino" in sys.modules\n')
    subprocess.run([sys.executable, '-c', code], check=True)


def test_every_module_imports_without_transformers():
    """The Hugging Face conversion imports transformers and safetensors only when it reads or writes a directory:
    with neither importable, every module of mmddetr (the converters included) still imports."""
    code = ('import importlib, pkgutil, sys\n'
            'sys.modules["transformers"] = sys.modules["safetensors"] = None  # import raises ImportError\n'
            'import mmddetr\n'
            'names = [m.name for m in pkgutil.walk_packages(mmddetr.__path__, "mmddetr.")]\n'
            'assert {"mmddetr.convert.hf", "mmddetr.convert.official", "mmddetr.convert.checkpoint"} <= set(names)\n'
            'for name in names:\n'
            '    importlib.import_module(name)\n')
    subprocess.run([sys.executable, '-c', code], check=True)


def test_custom_imports_of_mmddetr_still_reach_our_modules_from_mmdet_configs():
    code = ('from mmengine.config import Config\n'
            'from mmengine.registry import DefaultScope\n'
            'from mmdet.registry import MODELS\n'
            'cfg = Config(dict(custom_imports=dict(imports=["mmddetr"]),\n'
            '                  attn=dict(type="mmddetr.MultiScaleDeformableAttention", embed_dims=32, num_heads=4)))\n'
            'from mmengine.utils import import_modules_from_strings\n'
            'import_modules_from_strings(**cfg.custom_imports)\n'
            'with DefaultScope.overwrite_default_scope("mmdet"):\n'
            '    attn = MODELS.build(cfg.attn)\n'
            'assert type(attn).__module__.startswith("mmddetr."), type(attn)\n')
    subprocess.run([sys.executable, '-c', code], check=True)
