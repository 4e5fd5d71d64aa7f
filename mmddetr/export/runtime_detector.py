"""An exported detector in an inference runtime, run as the PyTorch detector is: the config's data preprocessor in
front, the boxes mapped back to the original image after it. The runtimes themselves are subclasses
(:class:`~mmddetr.export.onnxruntime_detector.OnnxRuntimeDetector`,
:class:`~mmddetr.export.openvino_detector.OpenVinoDetector`); this module imports none of them until one is built by
name (:func:`build_runtime_detector`)."""
import importlib
import os.path as osp
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData
from torch import Tensor

from mmddetr.engine import first_line
from mmddetr.models import DeformableDETRHead
from mmddetr.models.detectors.utils import data_preprocessor_cfg
from mmddetr.registry import MODELS

# the runtimes by name (tools/infer.py's --backend): module and class of each one's RuntimeDetector
RUNTIME_DETECTORS = {
    'onnxruntime': ('mmddetr.export.onnxruntime_detector', 'OnnxRuntimeDetector'),
    'openvino': ('mmddetr.export.openvino_detector', 'OpenVinoDetector'),
}


class RuntimeDetector:
    """A model written by :func:`mmddetr.export.onnx.export_onnx` (inputs ``images`` and ``valid_sizes``, outputs
    ``scores``, ``labels``, ``boxes``; class names in its metadata) in an inference runtime.

    A runtime subclass sets :attr:`runtime` and implements :meth:`load` and :meth:`run`; :meth:`predict` is theirs
    in common. Errors of the file are ``ValueError`` naming it.

    Args:
        cfg (Config): The config the model was exported from: its ``model.data_preprocessor`` (built in the config's
            ``default_scope``, ``'mmddetr'`` if it has none) makes the runtime's input.
        path (str): The exported model file.
    """
    runtime = ''  # the runtime's name, in errors

    def __init__(self, cfg: Config, path: str) -> None:
        if not osp.isfile(path):
            raise ValueError(f'model {path}: no such file')
        try:
            dataset_meta = self.load(path)
        except Exception as e:  # runtimes raise their own errors for files they cannot read
            raise ValueError(f'model {path}: cannot be loaded by {self.runtime} ({first_line(e)})') from e
        if dataset_meta is None:
            raise ValueError(f'model {path}: no dataset_meta in its metadata; export it with tools/export_onnx.py')
        self.dataset_meta = dataset_meta
        with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmddetr')):
            self.data_preprocessor = MODELS.build(data_preprocessor_cfg(cfg.model.data_preprocessor))

    def load(self, path: str) -> Optional[dict]:
        """Opens the model at ``path`` in the runtime; returns its ``dataset_meta`` (``classes``, ``palette``), None
        when its metadata holds none."""
        raise NotImplementedError

    def run(self, images: Tensor, valid_sizes: Tensor) -> Sequence[np.ndarray]:
        """The model on a batch: ``images`` (bs, 3, H, W) normalised and padded, ``valid_sizes`` (bs, 2) int64 →
        ``scores`` (bs, k), ``labels`` (bs, k) int64 and ``boxes`` (bs, k, 4) in pixels of ``images``."""
        raise NotImplementedError

    def predict(self, data: dict) -> Tuple[InstanceData, DetDataSample]:
        """Detections of one image.

        Args:
            data (dict): The test pipeline's output for the image (``inputs``, ``data_samples``).

        Returns:
            tuple[InstanceData, DetDataSample]: ``scores`` (k, ), ``labels`` (k, ) and ``bboxes`` (k, 4) (x1, y1, x2,
            y2) in pixels of the original image, best first; and the image's data sample after the data preprocessor
            (``ori_shape``, ``img_shape``, ``scale_factor``, ``batch_input_shape``).
        """
        data = self.data_preprocessor(pseudo_collate([data]), False)
        inputs, sample = data['inputs'], data['data_samples'][0]
        valid_sizes = torch.tensor([sample.img_shape[:2]])
        scores, labels, boxes = (torch.from_numpy(a[0]) for a in self.run(inputs, valid_sizes))
        return InstanceData(scores=scores, labels=labels,
                            bboxes=DeformableDETRHead.boxes_to_original(boxes, sample.scale_factor)), sample


def build_runtime_detector(runtime: str, cfg: Config, path: str) -> RuntimeDetector:
    """The :class:`RuntimeDetector` of ``runtime`` (a key of ``RUNTIME_DETECTORS``) on the model at ``path``; the
    runtime's module is imported here.

    Raises:
        ImportError: The runtime's packages (the ``export`` extra) are not installed; the message says how to install
            them.
        ValueError: ``runtime`` is none of ``RUNTIME_DETECTORS``, or the file is bad (as :class:`RuntimeDetector`).
    """
    if runtime not in RUNTIME_DETECTORS:
        raise ValueError(f'runtime: expected one of {", ".join(RUNTIME_DETECTORS)}, got {runtime!r}')
    module, name = RUNTIME_DETECTORS[runtime]
    try:
        detector_class = getattr(importlib.import_module(module), name)
    except ImportError as e:
        raise ImportError(f'{runtime} needs the export extra ({e}); install it with `pip install -e ".[export]"` or '
                          '`bash tools/install.sh`') from e
    return detector_class(cfg, path)
