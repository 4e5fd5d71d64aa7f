"""The padding masks of the feature levels select the same input pixels in ONNX Runtime and OpenVINO as in torch.
ONNX's nearest ``Resize`` rounds differently from torch's nearest interpolation (for an input of 65 rows and a level
of 5, it takes rows 0, 12, 25, 39, 51 where torch takes 0, 13, 26, 39, 52), so the detector writes torch's rounding
out (``nearest_source``) in whole numbers (OpenVINO turns a float division into a multiplication by the reciprocal)
and exports that."""
import numpy as np
import pytest
import torch
from torch import nn

ort = pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')
pytest.importorskip('openvino')

from mmddetr.models.detectors.deformable_detr import nearest_source  # noqa: E402


class _Source(torch.nn.Module):
    """The input row of every level row: ours, or with ``interpolate`` torch's nearest interpolation of the rows."""

    def __init__(self, interpolate=False):
        super().__init__()
        self.interpolate = interpolate

    def forward(self, level, image):
        if self.interpolate:
            rows = torch.arange(image.shape[0], dtype=torch.float32)[None, None, :, None]
            return nn.functional.interpolate(rows, size=(level.shape[0], 1), mode='nearest')[0, 0, :, 0].long()
        return nearest_source(level.shape[0], image.shape[0], image.device)


def _session(module, path):
    """ONNX Runtime session of ``module`` exported with dynamic level and image sizes; and its input names."""
    sizes = torch.export.Dim('level', min=2), torch.export.Dim('image', min=2)
    program = torch.onnx.export(module, (torch.zeros(25), torch.zeros(200)), dynamo=True,
                                dynamic_shapes=({0: sizes[0]}, {0: sizes[1]}))
    program.save(str(path))
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return session, [i.name for i in session.get_inputs()]


def test_onnx_resize_rounds_otherwise_than_torch(tmp_path):
    session, names = _session(_Source(interpolate=True), tmp_path / 'resize.onnx')
    got = session.run(None, {names[0]: np.zeros(5, np.float32), names[1]: np.zeros(65, np.float32)})[0]
    assert got.tolist() == [0, 12, 25, 39, 51]
    assert _Source(interpolate=True)(torch.zeros(5), torch.zeros(65)).tolist() == [0, 13, 26, 39, 52]


def test_exported_source_indices_equal_torchs_for_every_level_size(tmp_path):
    from mmddetr.export.openvino_detector import compile_model
    session, names = _session(_Source(), tmp_path / 'source.onnx')
    compiled = compile_model(str(tmp_path / 'source.onnx'))
    runs = dict(onnxruntime=lambda inputs: session.run(None, inputs)[0], openvino=lambda inputs: compiled(inputs)[0])
    for image in range(65, 1400):
        for stride in (8, 16, 32, 64):
            level = -(-image // stride)  # the backbone's and neck's ceil divisions
            if level < 2:
                continue
            expected = nearest_source(level, image, 'cpu').numpy()
            for runtime, run in runs.items():
                got = run({names[0]: np.zeros(level, np.float32), names[1]: np.zeros(image, np.float32)})
                np.testing.assert_array_equal(got, expected, err_msg=f'{runtime}: {image}')
