"""The exported ONNX model in OpenVINO on the CPU. Imports openvino, and onnx for the model's metadata (the ``export``
extra)."""
from typing import Optional, Sequence

import numpy as np
import openvino
import openvino.properties as props
from torch import Tensor

from .onnx import OUTPUT_NAMES, dataset_meta_of
from .runtime_detector import RuntimeDetector


def compile_model(path: str, threads: int = 0) -> openvino.CompiledModel:
    """The ONNX model at ``path`` read by OpenVINO and compiled for the CPU, its batch, height and width left dynamic.

    Inference runs in float32 (OpenVINO's CPU default is bfloat16 on CPUs that have it, which moves the scores by more
    than 1e-4) with ``threads`` threads (0: OpenVINO's default, all physical cores, as ONNX Runtime's 0).
    """
    core = openvino.Core()
    return core.compile_model(core.read_model(path), 'CPU', {
        props.hint.inference_precision: openvino.Type.f32,
        props.inference_num_threads: threads
    })


def run_compiled(compiled: openvino.CompiledModel, images: Tensor, valid_sizes: Tensor) -> Sequence[np.ndarray]:
    """``(scores, labels, boxes)`` of the compiled model on the inputs (copied out: the next call does not overwrite
    them)."""
    outputs = compiled({'images': images.numpy(), 'valid_sizes': valid_sizes.numpy()})
    return [outputs[name] for name in OUTPUT_NAMES]


class OpenVinoDetector(RuntimeDetector):
    """A model of :func:`mmddetr.export.onnx.export_onnx` in OpenVINO on the CPU (:func:`compile_model`, float32,
    OpenVINO's default threads), predicting as :class:`RuntimeDetector`.

    Example::

        detector = OpenVinoDetector(Config.fromfile(config), 'model.onnx')
        results, sample = detector.predict(test_pipeline(dict(img_path='demo.jpg', img_id=0)))

    Args:
        cfg (Config): The config the model was exported from.
        path (str): The ``.onnx`` file.
    """
    runtime = 'OpenVINO'

    def load(self, path: str) -> Optional[dict]:
        self.compiled = compile_model(path)
        return dataset_meta_of(path)

    def run(self, images: Tensor, valid_sizes: Tensor) -> Sequence[np.ndarray]:
        return run_compiled(self.compiled, images, valid_sizes)
