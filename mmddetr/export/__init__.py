"""Export of the detector: torch.export-able with dynamic shapes (:class:`DetectorWithPostprocess`), and to ONNX
(:mod:`mmddetr.export.onnx`, which needs the ``export`` extra: onnx, onnxscript, onnxruntime)."""
from .detector import MIN_SIZE, DetectorWithPostprocess, dynamic_shapes, export_program

__all__ = ['MIN_SIZE', 'DetectorWithPostprocess', 'dynamic_shapes', 'export_program']
