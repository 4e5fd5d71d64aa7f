"""The toy dataset maker: deterministic, valid COCO, the promised variety."""
import filecmp
import os

import numpy as np
from pycocotools.coco import COCO

from mmddetr.datasets import TOY_CLASSES, make_toy_dataset


def test_deterministic_by_seed(tmp_path):
    for name in ('a', 'b'):
        make_toy_dataset(str(tmp_path / name), num_train=6, num_val=3, size=64, seed=3)
    make_toy_dataset(str(tmp_path / 'c'), num_train=6, num_val=3, size=64, seed=4)
    for rel in ('annotations/instances_train.json', 'annotations/instances_val.json', 'train/000006.png',
                'val/000003.png'):
        assert filecmp.cmp(tmp_path / 'a' / rel, tmp_path / 'b' / rel, shallow=False), rel
    assert not filecmp.cmp(tmp_path / 'a' / 'train/000001.png', tmp_path / 'c' / 'train/000001.png', shallow=False)
    assert not any(name.endswith('.tmp') for name in os.listdir(tmp_path / 'a'))


def test_valid_coco_with_small_and_large_objects(tmp_path):
    size = 256
    make_toy_dataset(str(tmp_path), num_train=60, num_val=2, size=size, seed=0)
    coco = COCO(str(tmp_path / 'annotations' / 'instances_train.json'))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(TOY_CLASSES)
    counts = [len(coco.getAnnIds(imgIds=i)) for i in coco.getImgIds()]
    assert len(counts) == 60 and min(counts) >= 1 and max(counts) <= 8
    boxes = np.array([a['bbox'] for a in coco.loadAnns(coco.getAnnIds())])
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 0] + boxes[:, 2] <= size).all()
    assert (boxes[:, 1] + boxes[:, 3] <= size).all()
    sides = boxes[:, 2:].max(1)
    assert sides.min() <= 12 and sides.max() >= size / 3  # from about 8 px to about half the image
    assert {a['category_id'] for a in coco.loadAnns(coco.getAnnIds())} == {1, 2, 3, 4, 5}
    assert all(os.path.isfile(tmp_path / 'train' / img['file_name']) for img in coco.loadImgs(coco.getImgIds()))
