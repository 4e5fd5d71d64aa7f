"""OnnxRuntimeDetector and OpenVinoDetector, on one exported file, predict an image as the eager detector does (boxes
in the original image, class names from the file); export_checked writes a checked file or nothing; bad files are
ValueErrors naming them."""
import os

import pytest
import torch

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')
pytest.importorskip('openvino')

from toy_configs import PLAIN_TOY  # noqa: E402

# mmddetr.export.runtime_detector.RUNTIME_DETECTORS: each runtime's detector class and its name in errors
RUNTIMES = [('onnxruntime', 'OnnxRuntimeDetector', 'ONNX Runtime'), ('openvino', 'OpenVinoDetector', 'OpenVINO')]


@pytest.fixture(scope='module')
def exported(tmp_path_factory, small_toy):
    """(config, eager detector, its .onnx file, export_checked's differences): the small plain toy with random
    weights and the toy classes, exported by export_checked on example_inputs(96, 128)."""
    from mmddetr.datasets import ToyShapesDataset
    from mmddetr.export import DetectorWithPostprocess, example_inputs
    from mmddetr.export.onnx import dataset_meta_metadata, export_checked
    cfg, detector = small_toy(PLAIN_TOY)
    detector.eval()
    detector.dataset_meta = ToyShapesDataset.METAINFO
    path = str(tmp_path_factory.mktemp('onnx') / 'toy.onnx')
    diffs = export_checked(DetectorWithPostprocess(detector), *example_inputs(96, 128), path,
                           metadata=dataset_meta_metadata(detector.dataset_meta))
    return cfg, detector, path, diffs


@pytest.mark.parametrize('runtime, detector_class, _', RUNTIMES)
def test_runtime_detector_predicts_an_image_as_eager(exported, tmp_path, assert_same_detections, runtime,
                                                     detector_class, _):
    import mmcv
    import onnxruntime
    import openvino
    from mmcv.transforms import Compose
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DefaultScope

    from mmddetr.export.runtime_detector import build_runtime_detector
    cfg, detector, path, diffs = exported
    assert diffs['score'] <= 1e-3 and set(diffs) == {'score', 'box', 'labels'}
    image = str(tmp_path / 'image.png')
    mmcv.imwrite(torch.randint(0, 256, (90, 140, 3), generator=torch.Generator().manual_seed(3)).byte().numpy(),
                 image)
    with DefaultScope.overwrite_default_scope('mmddetr'):
        pipeline = Compose([t for t in cfg.test_dataloader.dataset.pipeline if 'LoadAnnotations' not in t['type']])
    data = pipeline(dict(img_path=image, img_id=0))
    model = build_runtime_detector(runtime, cfg, path)
    assert type(model).__name__ == detector_class
    # the runtime's own object runs the model: an ONNX Runtime session, an OpenVINO compiled model
    held = dict(onnxruntime=onnxruntime.InferenceSession, openvino=openvino.CompiledModel)[runtime]
    assert [type(v) for v in vars(model).values() if isinstance(v, (onnxruntime.InferenceSession,
                                                                    openvino.CompiledModel))] == [held]
    assert model.dataset_meta['classes'] == tuple(detector.dataset_meta['classes'])
    results, sample = model.predict(data)
    assert sample.ori_shape == (90, 140) and sample.img_shape != sample.ori_shape  # resized by the pipeline
    with torch.no_grad():
        expected = detector.test_step(pseudo_collate([data]))[0].pred_instances
    assert len(results) == 100 and results.bboxes[:, 2].max() <= 140 < 2 * results.bboxes[:, 2].max()
    assert_same_detections(results, expected, score_atol=1e-4, box_atol=1e-2)


@pytest.mark.parametrize('runtime, _, name', RUNTIMES)
def test_bad_model_files_are_value_errors_naming_them(exported, tmp_path, runtime, _, name):
    from mmddetr.export.runtime_detector import build_runtime_detector
    cfg, _, path, _ = exported
    missing = str(tmp_path / 'none.onnx')
    with pytest.raises(ValueError, match=f'model {missing}: no such file'):
        build_runtime_detector(runtime, cfg, missing)
    not_onnx = tmp_path / 'notes.onnx'
    not_onnx.write_text('not a model')
    with pytest.raises(ValueError, match=f'model {not_onnx}: cannot be loaded by {name} \\(.+\\)'):
        build_runtime_detector(runtime, cfg, str(not_onnx))
    proto = onnx.load(path)
    del proto.metadata_props[:]
    bare = str(tmp_path / 'bare.onnx')
    onnx.save_model(proto, bare)
    with pytest.raises(ValueError, match=f'model {bare}: no dataset_meta in its metadata'):
        build_runtime_detector(runtime, cfg, bare)
    with pytest.raises(ValueError, match="runtime: expected one of onnxruntime, openvino, got 'tensorrt'"):
        build_runtime_detector('tensorrt', cfg, path)


def test_export_checked_never_overwrites_and_writes_nothing_that_fails(exported, tmp_path):
    from mmddetr.export import DetectorWithPostprocess, example_inputs
    from mmddetr.export.onnx import export_checked
    _, detector, path, _ = exported
    before = open(path, 'rb').read()
    model = DetectorWithPostprocess(detector)
    with pytest.raises(FileExistsError, match=f'{path} exists; it is never overwritten'):
        export_checked(model, *example_inputs(96, 128), path)
    assert open(path, 'rb').read() == before
    out = tmp_path / 'strict.onnx'
    with pytest.raises(ValueError, match=r"ONNX Runtime's scores differ from PyTorch's by \S+ \(more than -1.0\); "
                                         'nothing was written'):
        export_checked(model, *example_inputs(96, 128), str(out), score_tolerance=-1.0)
    assert os.listdir(tmp_path) == []
