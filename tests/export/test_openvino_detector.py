"""OpenVINO's compiled model: float32 at OpenVINO's default threads unless told otherwise, dynamic batch, height and
width, outputs that the next run does not overwrite; a missing openvino is an ImportError saying how to install it.
The exported detector in OpenVINO: tests/export/test_onnxruntime_detector.py (on the file it exports for ONNX Runtime
too)."""
import os
import sys

import numpy as np
import pytest
import torch

onnx = pytest.importorskip('onnx')
openvino = pytest.importorskip('openvino')


@pytest.fixture(scope='module')
def outputs_model(tmp_path_factory):
    """An ONNX file with the exported detector's inputs and outputs, computing ``scores`` = images @ imagesᵀ
    (batch, 3, height, height), ``labels`` = 2 x valid_sizes (int64) and ``boxes`` = the images, on dynamic batch,
    height and width."""
    from onnx import TensorProto, helper
    images = helper.make_tensor_value_info('images', TensorProto.FLOAT, ['batch', 3, 'height', 'width'])
    valid_sizes = helper.make_tensor_value_info('valid_sizes', TensorProto.INT64, ['batch', 2])
    nodes = [helper.make_node('Transpose', ['images'], ['transposed'], perm=[0, 1, 3, 2]),
             helper.make_node('MatMul', ['images', 'transposed'], ['scores']),
             helper.make_node('Add', ['valid_sizes', 'valid_sizes'], ['labels']),
             helper.make_node('Identity', ['images'], ['boxes'])]
    outputs = [helper.make_tensor_value_info('scores', TensorProto.FLOAT, None),
               helper.make_tensor_value_info('labels', TensorProto.INT64, None),
               helper.make_tensor_value_info('boxes', TensorProto.FLOAT, None)]
    graph = helper.make_graph(nodes, 'outputs', [images, valid_sizes], outputs)
    path = str(tmp_path_factory.mktemp('openvino') / 'outputs.onnx')
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)]), path)
    return path


def test_compiled_model_runs_float32_at_openvinos_default_threads(outputs_model):
    import openvino.properties as props

    from mmddetr.export.openvino_detector import compile_model, run_compiled
    core = openvino.Core()
    default = core.compile_model(core.read_model(outputs_model), 'CPU')
    compiled = compile_model(outputs_model)
    assert compiled.get_property(props.hint.inference_precision) == openvino.Type.f32
    assert compiled.get_property(props.inference_num_threads) == default.get_property(props.inference_num_threads)
    assert compile_model(outputs_model, threads=1).get_property(props.inference_num_threads) == 1
    assert os.listdir(os.path.dirname(outputs_model)) == ['outputs.onnx']  # read as it is: no IR (.xml/.bin) written
    if default.get_property(props.hint.inference_precision) == openvino.Type.bf16:  # OpenVINO's default on this CPU
        images = torch.randn(2, 3, 70, 90, generator=torch.Generator().manual_seed(0))
        products = (images @ images.transpose(2, 3)).numpy()
        scores = run_compiled(default, images, torch.ones(2, 2, dtype=torch.long))[0]
        assert np.abs(scores - products).max() > 1e-2


def test_run_compiled_takes_any_batch_and_size_and_copies_its_outputs(outputs_model):
    from mmddetr.export.openvino_detector import compile_model, run_compiled
    compiled = compile_model(outputs_model)
    gen = torch.Generator().manual_seed(0)
    runs = []
    for batch, height, width in ((2, 70, 90), (1, 130, 65)):
        images = torch.randn(batch, 3, height, width, generator=gen)
        valid_sizes = torch.randint(1, 100, (batch, 2), generator=gen)
        runs.append((images, valid_sizes, run_compiled(compiled, images, valid_sizes)))
    for images, valid_sizes, (scores, labels, boxes) in runs:  # the first run's outputs after the second run
        np.testing.assert_allclose(scores, (images @ images.transpose(2, 3)).numpy(), atol=1e-4, rtol=1e-5)
        assert labels.dtype == np.int64 and (labels == 2 * valid_sizes.numpy()).all()
        assert boxes.dtype == np.float32 and (boxes == images.numpy()).all()


def test_a_missing_openvino_is_an_import_error_saying_how_to_install_it(monkeypatch):
    from mmengine.config import Config

    from mmddetr.export.runtime_detector import build_runtime_detector
    monkeypatch.setitem(sys.modules, 'openvino', None)  # import openvino raises ImportError
    monkeypatch.delitem(sys.modules, 'mmddetr.export.openvino_detector', raising=False)
    with pytest.raises(ImportError, match=r'^openvino needs the export extra \(.*openvino.*\); install it with '
                                          r'`pip install -e "\.\[export\]"` or `bash tools/install\.sh`$'):
        build_runtime_detector('openvino', Config(), 'model.onnx')
