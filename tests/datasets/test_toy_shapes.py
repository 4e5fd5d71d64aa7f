"""The toy dataset maker: deterministic, valid COCO, the promised variety; the toy dataset's data_root checked."""
import filecmp
import os

import numpy as np
import pytest
from pycocotools.coco import COCO

from mmddetr.datasets import TOY_CLASSES, DatasetError, ToyShapesDataset, make_toy_dataset


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


def test_toy_dataset_needs_a_folder_it_can_write(tmp_path):
    expected = 'expected the folder where the toy data is (or will be) made, e.g. data/toy/'
    not_a_folder = tmp_path / 'toy'
    not_a_folder.write_text('a file')
    cases = [('', f"ToyShapesDataset: data_root is ''; {expected}"),
             (None, f'ToyShapesDataset: data_root is None; {expected}'),
             (str(not_a_folder), f'ToyShapesDataset: data_root {not_a_folder} is a file; {expected}'),
             (f'{not_a_folder}/sub/', f'ToyShapesDataset: cannot make the toy data under data_root '
                                      f"{not_a_folder}/sub/: [Errno 20] Not a directory: '{not_a_folder}/sub/'")]
    for data_root, message in cases:
        with pytest.raises(DatasetError) as error:
            ToyShapesDataset(data_root=data_root, ann_file='annotations/instances_train.json',
                             data_prefix=dict(img='train/'), num_train=2, num_val=1, image_size=32)
        assert str(error.value) == message
    assert os.listdir(tmp_path) == ['toy'] and not_a_folder.read_text() == 'a file'  # nothing written
