"""Export of the detector: torch.export-able with dynamic shapes (:class:`DetectorWithPostprocess`), and to ONNX
(:mod:`mmddetr.export.onnx`, which needs the ``export`` extra: onnx, onnxscript, onnxruntime, openvino). Exported
models run in inference runtimes as :class:`~mmddetr.export.runtime_detector.RuntimeDetector` subclasses (ONNX Runtime:
:mod:`mmddetr.export.onnxruntime_detector`; OpenVINO: :mod:`mmddetr.export.openvino_detector`)."""
from .detector import MIN_SIZE, DetectorWithPostprocess, dynamic_shapes, example_inputs, export_program

__all__ = ['MIN_SIZE', 'DetectorWithPostprocess', 'dynamic_shapes', 'example_inputs', 'export_program']
