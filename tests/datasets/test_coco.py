"""The checked CocoDataset: mmdet's instances on valid files, errors that name file, ids and classes, one warning
for dropped and clipped boxes."""
import json
import math
import re

import pytest

from mmddetr.datasets import TOY_CLASSES, CocoDataset, make_toy_dataset

CATEGORIES = [dict(id=1, name='circle'), dict(id=2, name='square'), dict(id=3, name='triangle')]


def _ann(ann_id, bbox, category_id=1, image_id=1, area=None):
    area = bbox[2] * bbox[3] if area is None else area
    return dict(id=ann_id, image_id=image_id, category_id=category_id, bbox=bbox, area=area, iscrowd=0)


def _dataset(tmp_path, annotations, classes=('circle', 'square', 'triangle'), categories=CATEGORIES):
    images = [dict(id=1, file_name='a.png', width=100, height=80), dict(id=2, file_name='b.png', width=50, height=50)]
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(dict(images=images, annotations=annotations, categories=categories)))
    return CocoDataset(ann_file=str(path), data_prefix=dict(img=''), metainfo=dict(classes=classes), pipeline=[])


def test_valid_file_gives_mmdets_instances(tmp_path):
    from mmdet.datasets import CocoDataset as MMDetCocoDataset

    make_toy_dataset(str(tmp_path), num_train=12, num_val=1, size=64)
    kwargs = dict(data_root=str(tmp_path), ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'),
                  metainfo=dict(classes=TOY_CLASSES), pipeline=[])
    ours, theirs = CocoDataset(**kwargs), MMDetCocoDataset(**kwargs)
    assert len(ours) == len(theirs) == 12
    assert all(ours.get_data_info(i) == theirs.get_data_info(i) for i in range(12))


def test_unknown_category_id_names_file_annotation_image_and_classes(tmp_path):
    annotations = [_ann(1, [0, 0, 10, 10]), _ann(2, [5, 5, 10, 10], image_id=2), _ann(7, [1, 1, 5, 5], category_id=9,
                                                                                      image_id=2)]
    with pytest.raises(ValueError) as error:
        _dataset(tmp_path, annotations)
    message = str(error.value)
    assert str(tmp_path / 'ann.json') in message
    assert '1 of 3 annotations have category ids' in message and '[9]' in message
    assert 'annotation id 7, image id 2' in message
    assert "{1: 'circle', 2: 'square', 3: 'triangle'}" in message
    assert 'most annotations' not in message


def test_mostly_unknown_ids_suggest_shifted_ids(tmp_path):
    annotations = [_ann(i, [0, 0, 10, 10], category_id=i % 3) for i in range(1, 7)]  # 0-based ids
    with pytest.raises(ValueError, match=r'2 of 6 .*\[0\]'):
        _dataset(tmp_path, annotations)
    annotations = [_ann(i, [0, 0, 10, 10], category_id=0) for i in range(1, 4)]
    with pytest.raises(ValueError, match='most annotations are affected: the category ids are probably shifted'):
        _dataset(tmp_path, annotations)


def test_classes_must_be_the_files_category_names_in_its_order(tmp_path):
    annotations = [_ann(1, [0, 0, 10, 10])]
    with pytest.raises(ValueError, match=r"dataset classes \['Circle'\] are not category names .*1: 'circle'"):
        _dataset(tmp_path, annotations, classes=('Circle', 'square', 'triangle'))
    with pytest.raises(ValueError, match=r"order .* expected \('circle', 'square'\), got \('square', 'circle'\)"):
        _dataset(tmp_path, annotations, classes=('square', 'circle'))


def test_class_subset_ignores_the_others_with_a_warning(tmp_path, logged_warnings):
    annotations = [_ann(1, [0, 0, 10, 10], category_id=1), _ann(2, [0, 0, 10, 10], category_id=2),
                   _ann(3, [0, 0, 10, 10], category_id=2), _ann(4, [0, 0, 10, 10], category_id=3)]
    dataset = _dataset(tmp_path, annotations, classes=('square', ))
    assert [i['bbox_label'] for i in dataset.get_data_info(0)['instances']] == [0, 0]
    [message] = logged_warnings
    assert "not among the dataset classes: 'circle' (id 1): 1, 'triangle' (id 3): 1" in message
    assert 'probably do not match' not in message
    logged_warnings.clear()
    _dataset(tmp_path, annotations, classes=('triangle', ))
    assert 'most annotations are ignored' in logged_warnings[0]


def test_bad_boxes_are_dropped_or_clipped_with_one_warning(tmp_path, logged_warnings):
    annotations = [
        _ann(1, [10, 10, 20, 20]),  # kept
        _ann(2, [10, 10, 0, 20]),  # zero width
        _ann(3, [10, 10, -5, 20]),  # negative width
        _ann(4, [10, 10, 0.5, 20]),  # under 1 px
        _ann(5, [10, 10, 20, 20], area=0),  # zero area
        _ann(6, [150, 10, 20, 20]),  # right of the image
        _ann(7, [-30, -30, 20, 20]),  # above and left of it
        _ann(8, [90, 70, 20, 20]),  # partly outside: clipped
        _ann(9, [-5, 10, 20, 20]),  # partly outside: clipped
        _ann(10, [10, math.nan, 20, 20]),
    ]
    dataset = _dataset(tmp_path, annotations)
    boxes = [i['bbox'] for i in dataset.get_data_info(0)['instances']]
    assert boxes == [[10, 10, 30, 30], [90, 70, 100, 80], [0, 10, 15, 30]]
    [message] = logged_warnings
    assert message.startswith(f'{tmp_path / "ann.json"}: of 10 annotations, ')
    for part in ('1 with negative width or height (ids 3)', '3 under 1 px wide or high, or of zero area (ids 2, 4, 5)',
                 '2 outside the image (ids 6, 7)', '2 partly outside the image, clipped to it (ids 8, 9)',
                 '1 with non-finite coordinates (ids 10)'):
        assert part in message


def test_valid_boxes_inside_the_image_log_nothing(tmp_path, logged_warnings):
    _dataset(tmp_path, [_ann(1, [0, 0, 100, 80]), _ann(2, [0, 0, 50, 50], image_id=2)])
    assert logged_warnings == []


@pytest.mark.parametrize('key, value, problem', [('bbox', [1, 2, 3], 'has bbox [1, 2, 3], expected [x, y, w, h]'),
                                                 ('bbox', ['1', 2, 3, 4], "has bbox ['1', 2, 3, 4]"),
                                                 ('bbox', None, "has no ['bbox']"),
                                                 ('area', None, "has no ['area']")])
def test_malformed_annotation_is_named(tmp_path, key, value, problem):
    annotation = _ann(3, [0, 0, 10, 10], image_id=2)
    annotation[key] = value
    if value is None:
        del annotation[key]
    with pytest.raises(ValueError, match=re.escape(f'annotation id 3 (image id 2) {problem}')):
        _dataset(tmp_path, [annotation])


def test_configs_use_the_checked_dataset_and_image_loader():
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmddetr.datasets import LoadImageFromFile
    from mmddetr.registry import DATASETS, TRANSFORMS
    with DefaultScope.overwrite_default_scope('mmddetr'):
        for config in ('configs/deformable_detr_r50.py', 'configs/toy/deformable_detr_r18_toy.py'):
            cfg = Config.fromfile(config)
            for loader in ('train_dataloader', 'val_dataloader'):
                dataset = cfg[loader].dataset
                assert issubclass(DATASETS.get(dataset.type), CocoDataset)
                assert TRANSFORMS.get(dataset.pipeline[0].type) is LoadImageFromFile
