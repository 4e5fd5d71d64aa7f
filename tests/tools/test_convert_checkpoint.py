"""tools/convert_checkpoint.py as a user runs it: a Hugging Face model directory (transformers' model with random
weights, fine-tuned-style classes: the toy dataset's) → one command → a checkpoint and config that tools/test.py and
tools/infer.py take as they are (and the commands printed to test, infer and fine-tune with them); errors are one
line."""
import json
import os.path as osp

import pytest

from hf_models import hf_model
from tool_runs import check_ok

pytest.importorskip('transformers')

TOY_CLASSES = ('circle', 'square', 'triangle', 'ring', 'cross')


def test_hf_directory_to_test_and_infer(run_tool, toy_root, tmp_path):
    hf = tmp_path / 'hf'
    hf_model('refine', id2label={str(i): name for i, name in enumerate(TOY_CLASSES)}).save_pretrained(hf)
    out = tmp_path / 'out' / 'toy_refine.pth'
    proc = check_ok(run_tool('convert_checkpoint.py', '--from', 'hf', '--to', 'mmddetr', str(hf), str(out)))
    config = str(out)[:-len('.pth')] + '.py'
    assert f'python tools/test.py {config} {out}\n' in proc.stdout and "its classes are not COCO's" in proc.stdout
    assert f'python tools/infer.py {config} {out} IMAGES... --out-dir DIR\n' in proc.stdout
    assert f'python tools/train.py {config} --cfg-options load_from={out}\n' in proc.stdout  # fine-tune
    text = open(config).read()
    assert 'deformable_detr_r50_refine.py' in text and repr(TOY_CLASSES) in text and 'num_classes=5' in text
    assert 'max_per_img=60' in text  # transformers' post-processing: the top 100, or all 12 queries x 5 classes

    data = [f'test_dataloader.dataset.data_root={toy_root}', 'test_dataloader.dataset.ann_file='
            'annotations/instances_val.json', 'test_dataloader.dataset.data_prefix.img=val/',
            f'test_evaluator.ann_file={toy_root}annotations/instances_val.json', 'test_dataloader.num_workers=0',
            'test_dataloader.persistent_workers=False', 'test_dataloader.batch_size=4',
            'test_dataloader.dataset.pipeline.1.scale=(128,128)']
    proc = check_ok(run_tool('test.py', config, str(out), '--work-dir', str(tmp_path / 'test'), '--cfg-options',
                             *data))
    assert 'coco/bbox_mAP' in proc.stdout + proc.stderr
    image = osp.join(toy_root, 'val', '000001.png')
    check_ok(run_tool('infer.py', config, str(out), image, '--out-dir', str(tmp_path / 'infer'), '--score-thr', '0'))
    [record] = json.loads((tmp_path / 'infer' / 'predictions.json').read_text())
    assert len(record['detections']) == 60 and {d['class_name'] for d in record['detections']} <= set(TOY_CLASSES)

    proc = run_tool('convert_checkpoint.py', '--from', 'hf', '--to', 'mmddetr', str(hf), str(out))
    assert proc.returncode == 1 and proc.stderr == f'error: {out} exists; choose a new path (nothing is overwritten)\n'
