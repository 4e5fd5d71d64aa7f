"""The checked CocoDataset: mmdet's instances on valid files, errors that name file, ids, classes or images, one
warning for dropped and clipped boxes."""
import json
import math
import re

import pytest

from mmddetr.datasets import TOY_CLASSES, CocoDataset, DatasetError, make_toy_dataset

CATEGORIES = [dict(id=1, name='circle'), dict(id=2, name='square'), dict(id=3, name='triangle')]
IMAGES = [dict(id=1, file_name='a.png', width=100, height=80), dict(id=2, file_name='b.png', width=50, height=50)]


def _ann(ann_id, bbox, category_id=1, image_id=1, area=None):
    area = bbox[2] * bbox[3] if area is None else area
    return dict(id=ann_id, image_id=image_id, category_id=category_id, bbox=bbox, area=area, iscrowd=0)


def _build(tmp_path, content, classes=('circle', 'square', 'triangle'), **kwargs):
    """The dataset of the annotation file ``tmp_path/ann.json`` with ``content`` (bytes, or an object written as
    JSON); the images a.png and b.png are files (empty ones: only their existence is checked when it is built)."""
    for name in ('a.png', 'b.png'):
        (tmp_path / name).touch()
    path = tmp_path / 'ann.json'
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    return CocoDataset(ann_file=str(path), data_prefix=dict(img=f'{tmp_path}/'), metainfo=dict(classes=classes),
                       pipeline=[], **kwargs)


def _dataset(tmp_path, annotations, categories=CATEGORIES, images=IMAGES, **kwargs):
    return _build(tmp_path, dict(images=images, annotations=annotations, categories=categories), **kwargs)


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
    with pytest.raises(DatasetError) as error:
        _dataset(tmp_path, annotations)
    message = str(error.value)
    assert str(tmp_path / 'ann.json') in message
    assert '1 of 3 annotations have category ids' in message and '[9]' in message
    assert 'annotation id 7, image id 2' in message
    assert "{1: 'circle', 2: 'square', 3: 'triangle'}" in message
    assert 'most annotations' not in message


def test_mostly_unknown_ids_suggest_shifted_ids(tmp_path):
    annotations = [_ann(i, [0, 0, 10, 10], category_id=i % 3) for i in range(1, 7)]  # 0-based ids
    with pytest.raises(DatasetError, match=r'2 of 6 .*\[0\]'):
        _dataset(tmp_path, annotations)
    annotations = [_ann(i, [0, 0, 10, 10], category_id=0) for i in range(1, 4)]
    with pytest.raises(DatasetError, match='most annotations are affected: the category ids are probably shifted'):
        _dataset(tmp_path, annotations)


def test_classes_must_be_the_files_category_names_in_its_order(tmp_path):
    annotations = [_ann(1, [0, 0, 10, 10])]
    with pytest.raises(DatasetError, match=r"dataset classes \['Circle'\] are not category names .*1: 'circle'"):
        _dataset(tmp_path, annotations, classes=('Circle', 'square', 'triangle'))
    with pytest.raises(DatasetError, match=r"order .* expected \('circle', 'square'\), got \('square', 'circle'\)"):
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
    with pytest.raises(DatasetError, match=re.escape(f'annotation id 3 (image id 2) {problem}')):
        _dataset(tmp_path, [annotation])


GOOD = dict(images=IMAGES, annotations=[_ann(1, [0, 0, 10, 10])], categories=CATEGORIES)
LAYOUT = 'expected a JSON object with "images", "categories" and (for training) "annotations" lists'


@pytest.mark.parametrize('content, problem', [
    (b'{"images": [', 'not a JSON file: Expecting value: line 1 column 13 (char 12)'),
    (b'', 'not a JSON file: Expecting value: line 1 column 1'),
    (b'\xff\xfe{}', "not a JSON file: 'utf-8' codec can't decode byte 0xff"),
    ([GOOD], f"annotation file format <class 'list'> not supported: {LAYOUT}"),
    (dict(GOOD, images=None), f"{LAYOUT}, got 'images' is a NoneType"),
    ({k: v for k, v in GOOD.items() if k != 'images'}, f"{LAYOUT}, got no 'images'"),
    ({k: v for k, v in GOOD.items() if k != 'categories'}, f"{LAYOUT}, got no 'categories'"),
    (dict(GOOD, annotations={'1': 2}), f"{LAYOUT}, got 'annotations' is a dict"),
    (dict(GOOD, images=[IMAGES[0], dict(id=2, file_name=None, width=50, height=50)]),
     'images[1] has no valid file_name (expected an object with id, file_name (a string), width (a number), height '
     '(a number)), got {"id": 2, "file_name": null, "width": 50, "height": 50}'),
    (dict(GOOD, images=[dict(id=1, file_name='a.png', width='100')]), 'images[0] has no valid width, height'),
    (dict(GOOD, images=[IMAGES[0], 7]), 'images[1] has no valid id, file_name, width, height'),
    (dict(GOOD, categories=[dict(id=1)]), 'categories[0] has no valid name'),
    (dict(GOOD, annotations=[_ann(1, [0, 0, 10, 10]), dict(id=2, category_id=1, bbox=[0, 0, 1, 1])]),
     'annotations[1] has no valid image_id (expected an object with id, image_id, category_id)'),
    (dict(GOOD, annotations=[_ann(4, [0, 0, 10, 10]), _ann(4, [0, 0, 5, 5]), _ann(5, [0, 0, 5, 5])]),
     "the ids of 'annotations' must be unique; 1 repeat: 4"),
    (dict(GOOD, images=IMAGES + [dict(IMAGES[1], file_name='c.png')]), "the ids of 'images' must be unique; 1 repeat: "
                                                                         '2'),
], ids=['cut', 'empty', 'binary', 'list', 'images-null', 'no-images', 'no-categories', 'annotations-dict',
        'file_name-null', 'width-string', 'image-number', 'category-no-name', 'no-image_id', 'annotation-ids',
        'image-ids'])
def test_file_that_is_not_coco_json_is_named_in_one_line(tmp_path, content, problem):
    with pytest.raises(DatasetError) as error:
        _build(tmp_path, content)
    assert str(error.value).startswith(f'{tmp_path / "ann.json"}: {problem}') and '\n' not in str(error.value)


def test_test_files_need_no_annotations_and_unlisted_image_ids_are_counted(tmp_path, logged_warnings):
    dataset = _build(tmp_path, {k: v for k, v in GOOD.items() if k != 'annotations'})  # as image_info_test-dev2017
    assert len(dataset) == 2 and dataset.get_data_info(0)['instances'] == []
    assert logged_warnings == []
    annotations = [_ann(1, [0, 0, 10, 10]), _ann(2, [0, 0, 10, 10], image_id=9), _ann(3, [0, 0, 10, 10], image_id=9)]
    dataset = _dataset(tmp_path, annotations)
    assert [len(dataset.get_data_info(i)['instances']) for i in range(2)] == [1, 0]
    [message] = logged_warnings
    assert message == f"{tmp_path / 'ann.json'}: of 3 annotations, 2 for image ids not among the file's images, " \
                      'unused (ids 2, 3)'


def test_images_that_are_not_files_stop_or_are_left_out(tmp_path, logged_warnings):
    images = IMAGES + [dict(id=i, file_name=f'{name}.png', width=50, height=50) for i, name in enumerate('cdef', 3)]
    (tmp_path / 'e.png').mkdir()  # a folder is no image file
    (tmp_path / 'f.png').touch()
    annotations = [_ann(i, [0, 0, 10, 10], image_id=i) for i in range(1, 7)]
    missing = f'{tmp_path}/c.png, {tmp_path}/d.png, {tmp_path}/e.png'
    with pytest.raises(DatasetError) as error:
        _dataset(tmp_path, annotations, images=images)
    assert str(error.value) == (f"{tmp_path / 'ann.json'}: 3 of its 6 images are not files at data_root + "
                                f"data_prefix.img + file_name: {missing}; put them there, or set the dataset's "
                                "on_missing_image='skip' to leave them out")
    dataset = _dataset(tmp_path, annotations, images=images, on_missing_image='skip')
    assert [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))] == [
        f'{tmp_path}/{name}.png' for name in 'abf']
    assert logged_warnings == [f"{tmp_path / 'ann.json'}: 3 of its 6 images are not files at data_root + "
                               f"data_prefix.img + file_name: {missing}; left out (on_missing_image='skip')"]
    with pytest.raises(DatasetError, match=r'6 of its 6 images are not files .*: .*/elsewhere/a.png, .*/b.png, '
                                           r'.*/c.png, \.\.\.; none is there: data_root or data_prefix.img is probably '
                                           r'wrong$'):
        CocoDataset(ann_file=str(tmp_path / 'ann.json'), data_prefix=dict(img=f'{tmp_path}/elsewhere/'),
                    metainfo=dict(classes=('circle', )), pipeline=[], on_missing_image='skip')
    remote = CocoDataset(ann_file=str(tmp_path / 'ann.json'), data_prefix=dict(img='http://example.invalid/images/'),
                         metainfo=dict(classes=('circle', )), pipeline=[])  # a request per image: not checked
    assert len(remote) == 6 and remote.get_data_info(0)['img_path'] == 'http://example.invalid/images/a.png'
    with pytest.raises(DatasetError, match="^CocoDataset: on_missing_image must be 'raise' or 'skip', got 'warn'$"):
        _dataset(tmp_path, annotations, on_missing_image='warn')


def test_filters_that_leave_no_image_stop(tmp_path):
    with pytest.raises(DatasetError, match=re.escape(
            f"{tmp_path / 'ann.json'}: no images to use: filter_cfg {{'filter_empty_gt': True}} drops all 2 of its "
            "images (filter_empty_gt keeps only images with annotations of the dataset classes ('circle', 'square', "
            "'triangle'), min_size only images at least that large)")):
        _dataset(tmp_path, [], filter_cfg=dict(filter_empty_gt=True))
    with pytest.raises(DatasetError, match=re.escape(f"{tmp_path / 'ann.json'}: no images to use: it lists no image")):
        _dataset(tmp_path, [], images=[], test_mode=True)
    assert len(_dataset(tmp_path, [_ann(1, [0, 0, 10, 10])], filter_cfg=dict(filter_empty_gt=True))) == 1


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
