"""The padding masks of the feature levels select the same input pixels in ONNX Runtime as in torch. ONNX's nearest
``Resize`` rounds differently from torch's nearest interpolation (for an input of 65 rows and a level of 5, it takes
row 12 where torch takes 13), so the detector writes torch's rounding out (``nearest_source``) and exports that."""
import numpy as np
import pytest
import torch

ort = pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

from mmddetr.models.detectors.deformable_detr import nearest_source  # noqa: E402


class _Source(torch.nn.Module):

    def forward(self, level, image):
        return nearest_source(level.shape[0], image.shape[0], image.device)


def test_exported_source_indices_equal_torchs_for_every_level_size(tmp_path):
    sizes = torch.export.Dim('level', min=2), torch.export.Dim('image', min=2)
    program = torch.onnx.export(_Source(), (torch.zeros(25), torch.zeros(200)), dynamo=True,
                                dynamic_shapes=({0: sizes[0]}, {0: sizes[1]}))
    program.save(str(tmp_path / 'source.onnx'))
    session = ort.InferenceSession(str(tmp_path / 'source.onnx'), providers=['CPUExecutionProvider'])
    names = [i.name for i in session.get_inputs()]
    for image in range(65, 1400):
        for stride in (8, 16, 32, 64):
            level = -(-image // stride)  # the backbone's and neck's ceil divisions
            if level < 2:
                continue
            got = session.run(None, {names[0]: np.zeros(level, np.float32), names[1]: np.zeros(image, np.float32)})
            np.testing.assert_array_equal(got[0], nearest_source(level, image, 'cpu').numpy(), err_msg=str(image))
