"""The detector in ONNX Runtime and OpenVINO (CPU) against PyTorch eager on the same padded batch: plain, refine and
two-stage configs with random weights, exported at opsets 18, 21 and 23, a batch of two differently sized images (one
padded), and one file serving other sizes and batch sizes."""
import functools

import numpy as np
import pytest
import torch

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')
pytest.importorskip('openvino')

from mmddetr.export import DetectorWithPostprocess  # noqa: E402
from mmddetr.export.onnx import export_onnx, run_session, session  # noqa: E402
from mmddetr.export.openvino_detector import compile_model, run_compiled  # noqa: E402

# the toy configs (ResNet-18, 128 channels) with 1 encoder and 2 decoder layers: every path (box refinement between
# decoder layers, two-stage proposals), exported in about a minute; each at another opset (the exporter converts the
# graph from opset 18, in which our op's translation is written), so that the later ones are tested on a whole detector
TOY_VARIANTS = {
    'plain': ('configs/toy/deformable_detr_r18_toy.py', 18),
    'refine': ('configs/toy/deformable_detr_r18_toy_refine.py', 21),
    'twostage': ('configs/toy/deformable_detr_r18_toy_refine_twostage.py', 23),
}


@pytest.fixture(scope='module', params=list(TOY_VARIANTS))
def exported(request, tmp_path_factory, small_toy, padded_batch):
    """(variant, PyTorch model, {runtime: run(images, valid_sizes)} of ONNX Runtime and OpenVINO) of a toy config
    exported at its opset, traced at 128x160."""
    config, opset = TOY_VARIANTS[request.param]
    model = DetectorWithPostprocess(small_toy(config)[1])
    path = str(tmp_path_factory.mktemp('onnx') / f'{request.param}.onnx')
    export_onnx(model, *padded_batch([(128, 160), (100, 120)]), path, opset=opset)
    # the standard operator set alone, at the opset asked for
    assert [(o.domain, o.version) for o in onnx.load(path, load_external_data=False).opset_import] == [('', opset)]
    runs = dict(onnxruntime=functools.partial(run_session, session(path)),
                openvino=functools.partial(run_compiled, compile_model(path)))
    return request.param, model, runs


def _check(model, runs, images, valid_sizes, per_image, assert_same_detections):
    with torch.no_grad():
        expected = model(images, valid_sizes)
    for runtime, run in runs.items():
        got = run(images, valid_sizes)
        assert [a.shape for a in got] == [tuple(t.shape) for t in expected] and expected[0].shape[1] == 100, runtime
        assert [a.dtype for a in got] == [np.float32, np.int64, np.float32], runtime
        assert (np.diff(got[0], axis=1) <= 0).all(), runtime  # best first
        for ours, theirs in zip(per_image(*got, valid_sizes), per_image(*expected, valid_sizes)):
            assert ((ours.bboxes >= 0) & (ours.bboxes <= 1)).all(), runtime  # clamped to the image's valid part
            # same labels, scores within 1e-4, boxes within 1e-4 of the image size
            assert_same_detections(ours, theirs, score_atol=1e-4, box_atol=1e-4)


def test_padded_batch_of_two_sizes_matches_pytorch(exported, padded_batch, per_image, assert_same_detections):
    _, model, runs = exported
    images, valid_sizes = padded_batch([(150, 200), (110, 170)], seed=1)  # the second one padded
    _check(model, runs, images, valid_sizes, per_image, assert_same_detections)


def test_one_file_serves_other_sizes_and_batch_sizes(exported, padded_batch, per_image, assert_same_detections):
    _, model, runs = exported
    for sizes in ([(256, 320)], [(512, 672), (448, 600)]):
        _check(model, runs, *padded_batch(sizes, seed=2), per_image, assert_same_detections)
