"""The exported ONNX model in ONNX Runtime on the CPU. Imports onnx and onnxruntime (the ``export`` extra)."""
from typing import Optional, Sequence

import numpy as np
from torch import Tensor

from .onnx import dataset_meta_of, run_session, session
from .runtime_detector import RuntimeDetector


class OnnxRuntimeDetector(RuntimeDetector):
    """A model of :func:`mmddetr.export.onnx.export_onnx` in an ONNX Runtime CPU session
    (:func:`~mmddetr.export.onnx.session`, ONNX Runtime's default threads), predicting as :class:`RuntimeDetector`.

    Example::

        detector = OnnxRuntimeDetector(Config.fromfile(config), 'model.onnx')
        results, sample = detector.predict(test_pipeline(dict(img_path='demo.jpg', img_id=0)))

    Args:
        cfg (Config): The config the model was exported from.
        path (str): The ``.onnx`` file.
    """
    runtime = 'ONNX Runtime'

    def load(self, path: str) -> Optional[dict]:
        self.session = session(path)
        return dataset_meta_of(path)

    def run(self, images: Tensor, valid_sizes: Tensor) -> Sequence[np.ndarray]:
        return run_session(self.session, images, valid_sizes)
