"""OnnxRuntimeDetector predicts an image as the eager detector does (boxes in the original image, class names from
the file); export_checked writes a checked file or nothing; bad files are ValueErrors naming them."""
import os

import pytest
import torch

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

from toy_configs import PLAIN_TOY  # noqa: E402


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


def test_onnxruntime_detector_predicts_an_image_as_eager(exported, tmp_path, assert_same_detections):
    import mmcv
    from mmcv.transforms import Compose
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DefaultScope

    from mmddetr.export.onnxruntime_detector import OnnxRuntimeDetector
    cfg, detector, path, diffs = exported
    assert diffs['score'] <= 1e-3 and set(diffs) == {'score', 'box', 'labels'}
    image = str(tmp_path / 'image.png')
    mmcv.imwrite(torch.randint(0, 256, (90, 140, 3), generator=torch.Generator().manual_seed(3)).byte().numpy(),
                 image)
    with DefaultScope.overwrite_default_scope('mmddetr'):
        pipeline = Compose([t for t in cfg.test_dataloader.dataset.pipeline if 'LoadAnnotations' not in t['type']])
    data = pipeline(dict(img_path=image, img_id=0))
    runtime = OnnxRuntimeDetector(cfg, path)
    assert runtime.dataset_meta['classes'] == tuple(detector.dataset_meta['classes'])
    results, sample = runtime.predict(data)
    assert sample.ori_shape == (90, 140) and sample.img_shape != sample.ori_shape  # resized by the pipeline
    with torch.no_grad():
        expected = detector.test_step(pseudo_collate([data]))[0].pred_instances
    assert len(results) == 100 and results.bboxes[:, 2].max() <= 140 < 2 * results.bboxes[:, 2].max()
    assert_same_detections(results, expected, score_atol=1e-4, box_atol=1e-2)


def test_bad_model_files_are_value_errors_naming_them(exported, tmp_path):
    from mmddetr.export.onnxruntime_detector import OnnxRuntimeDetector
    cfg, _, path, _ = exported
    missing = str(tmp_path / 'none.onnx')
    with pytest.raises(ValueError, match=f'model {missing}: no such file'):
        OnnxRuntimeDetector(cfg, missing)
    not_onnx = tmp_path / 'notes.onnx'
    not_onnx.write_text('not a model')
    with pytest.raises(ValueError, match=f'model {not_onnx}: cannot be loaded by ONNX Runtime \\(.+\\)'):
        OnnxRuntimeDetector(cfg, str(not_onnx))
    proto = onnx.load(path)
    del proto.metadata_props[:]
    bare = str(tmp_path / 'bare.onnx')
    onnx.save_model(proto, bare)
    with pytest.raises(ValueError, match=f'model {bare}: no dataset_meta in its metadata'):
        OnnxRuntimeDetector(cfg, bare)


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
