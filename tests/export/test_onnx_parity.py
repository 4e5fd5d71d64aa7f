"""The detector in ONNX Runtime (CPU) against PyTorch eager: plain, refine and two-stage configs with random weights,
a batch of two differently sized images (one padded), and one file serving other sizes and batch sizes."""
import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

from mmddetr.export import DetectorWithPostprocess  # noqa: E402
from mmddetr.export.onnx import export_onnx, run_session, session  # noqa: E402

# the toy configs (ResNet-18, 128 channels) with 1 encoder and 2 decoder layers: every path (box refinement between
# decoder layers, two-stage proposals), exported in about a minute
TOY = {
    'plain': 'configs/toy/deformable_detr_r18_toy.py',
    'refine': 'configs/toy/deformable_detr_r18_toy_refine.py',
    'twostage': 'configs/toy/deformable_detr_r18_toy_refine_twostage.py',
}


@pytest.fixture(scope='module', params=list(TOY))
def exported(request, tmp_path_factory, perturb, padded_batch):
    """(variant, PyTorch model, ONNX Runtime session) of a toy config exported at opset 18, traced at 128x160."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmddetr.registry import MODELS
    cfg = Config.fromfile(TOY[request.param])
    cfg.model.backbone.init_cfg = None
    cfg.model.encoder.num_layers, cfg.model.decoder.num_layers = 1, 2
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmddetr'):
        detector = MODELS.build(cfg.model)
        detector.init_weights()
    model = DetectorWithPostprocess(perturb(detector))
    path = str(tmp_path_factory.mktemp('onnx') / f'{request.param}.onnx')
    export_onnx(model, *padded_batch([(128, 160), (100, 120)]), path, opset=18)
    return request.param, model, session(path)


def _detections(scores, labels, boxes, valid_sizes):
    """Per image InstanceData, boxes divided by the image's (w, h): tolerances relative to the image size."""
    wh = torch.as_tensor(valid_sizes).flip(-1).repeat(1, 2)[:, None].float()
    boxes = torch.as_tensor(boxes) / wh
    return [InstanceData(scores=torch.as_tensor(s), labels=torch.as_tensor(l), bboxes=b)
            for s, l, b in zip(scores, labels, boxes)]


def _check(model, sess, images, valid_sizes, assert_same_detections):
    with torch.no_grad():
        expected = model(images, valid_sizes)
    got = run_session(sess, images, valid_sizes)
    assert [a.shape for a in got] == [tuple(t.shape) for t in expected]
    assert got[1].dtype == np.int64
    for ours, theirs in zip(_detections(*got, valid_sizes), _detections(*expected, valid_sizes)):
        # same labels, scores within 1e-4, boxes within 1e-4 of the image size
        assert_same_detections(ours, theirs, score_atol=1e-4, box_atol=1e-4)


def test_padded_batch_of_two_sizes_matches_pytorch(exported, padded_batch, assert_same_detections):
    _, model, sess = exported
    images, valid_sizes = padded_batch([(150, 200), (110, 170)], seed=1)  # the second one padded
    _check(model, sess, images, valid_sizes, assert_same_detections)


def test_one_file_serves_other_sizes_and_batch_sizes(exported, padded_batch, assert_same_detections):
    _, model, sess = exported
    for sizes in ([(256, 320)], [(512, 672), (448, 600)]):
        _check(model, sess, *padded_batch(sizes, seed=2), assert_same_detections)
