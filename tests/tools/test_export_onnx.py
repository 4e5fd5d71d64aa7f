"""tools/export_onnx.py: a checked ONNX file that tools/infer.py --backend onnxruntime and --backend openvino turn into
the PyTorch predictions.json and pictures; bad input (another config's checkpoint, an existing --out, an unsupported
opset, a runtime that is not installed)."""
import json
import os.path as osp
import re
import subprocess
import sys

import mmcv
import pytest
import torch
from mmengine.structures import InstanceData

from tool_runs import TOY, check_ok

pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')
pytest.importorskip('openvino')

PLAIN = 'configs/toy/deformable_detr_r18_toy.py'
# predictions.json rounds scores to 1e-4 and boxes to 0.01 px: two values within rounding may round one step apart
SCORE_ROUNDING, BOX_ROUNDING = 1e-4 + 1e-9, 0.01 + 1e-9


def _small_config(tmp_path, base):
    """``base`` with 1 encoder and 2 decoder layers (seconds to build, a minute to export)."""
    path = tmp_path / f'small_{osp.basename(base)}'
    path.write_text(f"_base_ = '{osp.abspath(base)}'\nmodel = dict(encoder=dict(num_layers=1), "
                    'decoder=dict(num_layers=2))\n')
    return str(path)


def _random_checkpoint(config, path, perturb):
    """A checkpoint of ``config`` with random weights and the toy classes, as training saves it."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmddetr.datasets import ToyShapesDataset
    from mmddetr.registry import MODELS
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmddetr'):
        model = MODELS.build(cfg.model)
        model.init_weights()
    perturb(model)
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=ToyShapesDataset.METAINFO)), path)
    return str(path)


def _instances(record, classes):
    """One image's detections of predictions.json as InstanceData, float64 (the rounded values compare exactly);
    each class name must be that of its label."""
    detections = record['detections']
    assert all(d['class_name'] == classes[d['label']] for d in detections)
    return InstanceData(scores=torch.tensor([d['score'] for d in detections], dtype=torch.float64),
                        labels=torch.tensor([d['label'] for d in detections]),
                        bboxes=torch.tensor([d['bbox'] for d in detections], dtype=torch.float64).view(-1, 4))


def test_exported_model_gives_the_pytorch_predictions_and_pictures(run_tool, toy_root, tmp_path, detection_pairs,
                                                                   assert_same_detections, perturb):
    from mmddetr.datasets import ToyShapesDataset
    from mmddetr.export.onnx import dataset_meta_of

    config = _small_config(tmp_path, TOY)
    checkpoint = _random_checkpoint(config, tmp_path / 'toy.pth', perturb)
    model = str(tmp_path / 'toy.onnx')
    proc = check_ok(run_tool('export_onnx.py', config, checkpoint, '--out', model, '--size', '96', '128'))
    assert 'onnx.checker: passed' in proc.stdout and f'wrote {model}' in proc.stdout, proc.stdout
    # checked on a batch of two images of --size, one padded from 3/4 of it
    assert re.search(r'on 2 images of 96x128 \(one padded from 72x96\): largest difference of scores \S+, of boxes '
                     r'\S+ px; labels differ at \S+% of the ranks', proc.stdout), proc.stdout
    # the class names and colours travel in the file's metadata
    meta = ToyShapesDataset.METAINFO
    assert dataset_meta_of(model) == dict(classes=tuple(meta['classes']), palette=[tuple(c) for c in meta['palette']])
    images = osp.join(toy_root, 'val')
    outs = {}
    # the one exported file serves both runtimes
    for backend, weights in (('pytorch', checkpoint), ('onnxruntime', model), ('openvino', model)):
        outs[backend] = tmp_path / backend
        check_ok(run_tool('infer.py', config, weights, images, '--out-dir', str(outs[backend]), '--score-thr', '0',
                          '--backend', backend))
    theirs = json.loads((outs['pytorch'] / 'predictions.json').read_text())
    pictures = sorted(p.name for p in outs['pytorch'].glob('*.png'))
    assert len(theirs) == 8 and len(pictures) == 8
    classes = meta['classes']
    for backend in ('onnxruntime', 'openvino'):
        ours = json.loads((outs[backend] / 'predictions.json').read_text())
        assert len(ours) == 8
        for o, t in zip(ours, theirs):
            assert (o['image'], o['height'], o['width']) == (t['image'], t['height'], t['width'])
            assert len(o['detections']) == len(t['detections']) == 100
            # the same detections, within the rounding (scores tying within it may come out in either order)
            assert_same_detections(_instances(o, classes), _instances(t, classes), score_atol=SCORE_ROUNDING,
                                   box_atol=BOX_ROUNDING)
        assert pictures == sorted(p.name for p in outs[backend].glob('*.png'))
        # a picture draws its detections in rank order, so tied scores may change which box is drawn on top (or
        # which is the 100th): pictures are compared where the two lists agree rank by rank, and most images do; a
        # label's score is written to 0.1 %, so a score on a rounding boundary may still change one label's digit
        # (0.4 %)
        compared = 0
        for o, t in zip(ours, theirs):
            same = detection_pairs(_instances(o, classes), _instances(t, classes), SCORE_ROUNDING, BOX_ROUNDING)
            if not same.diagonal().all():
                continue
            name = osp.splitext(osp.basename(o['image']))[0] + '.png'
            pytorch, runtime = (mmcv.imread(str(outs[b] / name)) for b in ('pytorch', backend))
            assert pytorch.shape == runtime.shape
            assert (pytorch != runtime).any(-1).mean() < 1e-2, name
            compared += 1
        assert compared >= 4, f'{backend}: only {compared} of 8 images have the same detections in the same order'

    # the file is never overwritten, not even by the same export
    before = open(model, 'rb').read()
    proc = run_tool('export_onnx.py', config, checkpoint, '--out', model, '--size', '96', '128')
    assert proc.returncode == 1 and f'--out: {model} exists' in proc.stderr and 'Traceback' not in proc.stderr
    assert open(model, 'rb').read() == before

    for backend, runtime in (('onnxruntime', 'ONNX Runtime'), ('openvino', 'OpenVINO')):
        proc = run_tool('infer.py', config, checkpoint, images, '--out-dir', str(tmp_path / 'x'), '--backend', backend)
        assert proc.returncode == 1 and f'cannot be loaded by {runtime}' in proc.stderr, proc.stderr[-2000:]
        assert 'Traceback' not in proc.stderr


def test_bad_input_is_named_and_nothing_is_written(run_tool, tmp_path, perturb):
    config = _small_config(tmp_path, TOY)
    plain_checkpoint = _random_checkpoint(_small_config(tmp_path, PLAIN), tmp_path / 'plain.pth', perturb)
    out = tmp_path / 'model.onnx'

    proc = run_tool('export_onnx.py', config, plain_checkpoint, '--out', str(out))  # a plain model's weights
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert "16 of the model's 225 weights are missing" in proc.stderr and 'this config' in proc.stderr
    assert not out.exists() and list(tmp_path.glob('*.partial-*')) == []

    proc = run_tool('export_onnx.py', config, plain_checkpoint, '--out', str(out), '--opset', '17')
    assert proc.returncode == 1 and '--opset: expected one of 18, 19, 20, 21, 22, 23, got 17' in proc.stderr

    proc = run_tool('export_onnx.py', config, plain_checkpoint, '--out', str(out), '--size', '64', '800')
    assert proc.returncode == 1 and '--size: expected a height and width of at least 65' in proc.stderr

    out.write_text('a file of the user')
    proc = run_tool('export_onnx.py', config, plain_checkpoint, '--out', str(out))
    assert proc.returncode == 1 and 'exists; it is never overwritten' in proc.stderr
    assert out.read_text() == 'a file of the user'

    proc = run_tool('export_onnx.py', config, str(tmp_path / 'none.pth'), '--out', str(tmp_path / 'new.onnx'))
    assert proc.returncode == 1 and f'checkpoint {tmp_path}/none.pth: no such file' in proc.stderr

    for backend in ('onnxruntime', 'openvino'):
        proc = run_tool('infer.py', config, str(out), str(tmp_path), '--out-dir', str(tmp_path / 'x'), '--backend',
                        backend, '--show-sampling-points')
        assert proc.returncode == 1 and '--show-sampling-points needs --backend pytorch' in proc.stderr


def test_a_runtime_that_is_not_installed_is_named_with_how_to_install_it(tmp_path):
    """infer.py --backend openvino where openvino cannot be imported (None in sys.modules: what Python does for a
    package that is not there) stops with one line naming it."""
    image = tmp_path / 'image.png'
    mmcv.imwrite(torch.zeros(70, 70, 3, dtype=torch.uint8).numpy(), str(image))
    argv = ['tools/infer.py', TOY, str(tmp_path / 'model.onnx'), str(image), '--out-dir', str(tmp_path / 'out'),
            '--backend', 'openvino']
    code = (f'import runpy, sys\nsys.modules["openvino"] = None\nsys.argv = {argv!r}\n'
            'runpy.run_path("tools/infer.py", run_name="__main__")\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.splitlines()[-1] == (
        "error: --backend openvino needs the export extra (import of openvino halted; None in sys.modules); install "
        'it with `pip install -e ".[export]"` or `bash tools/install.sh`')
    assert not (tmp_path / 'out').exists()
