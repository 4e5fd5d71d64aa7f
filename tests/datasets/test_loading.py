"""LoadImageFromFile: odd image formats load as 3-channel uint8 BGR; bad files stop with their path, or are skipped
with a warning in training when the config asks for it."""
import json
import re

import cv2
import numpy as np
import pytest
import torch

from mmddetr.datasets import TOY_CLASSES, DatasetError, LoadImageFromFile
from toy_configs import PLAIN_TOY


def _formats():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (36, 48), np.uint8)
    bgra = rng.integers(0, 256, (36, 48, 4), np.uint8)
    gray16 = rng.integers(0, 65536, (36, 48), np.uint16)
    bgr16 = rng.integers(0, 65536, (36, 48, 3), np.uint16)
    # file contents and the BGR uint8 image expected from them (alpha dropped, top 8 bits of 16-bit images)
    return dict(gray=(gray, np.repeat(gray[..., None], 3, 2)), rgba=(bgra, bgra[..., :3]),
                gray16=(gray16, np.repeat((gray16 >> 8).astype(np.uint8)[..., None], 3, 2)),
                rgb16=(bgr16, (bgr16 >> 8).astype(np.uint8)))


def _toy_root(root, files):
    """A toy-format dataset at ``root``: ``files`` {name: bytes, None (no file) or {} (a folder)} as train images,
    one box each."""
    (root / 'train').mkdir(parents=True)
    (root / 'annotations').mkdir()
    images, annotations = [], []
    for image_id, (name, content) in enumerate(files.items(), 1):
        if isinstance(content, bytes):
            (root / 'train' / name).write_bytes(content)
        elif content is not None:
            (root / 'train' / name).mkdir()
        images.append(dict(id=image_id, file_name=name, width=48, height=36))
        annotations.append(dict(id=image_id, image_id=image_id, category_id=1, bbox=[2, 2, 10, 8], area=80, iscrowd=0))
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(TOY_CLASSES)]
    for split in ('train', 'val'):  # both files there: ToyShapesDataset makes nothing
        (root / 'annotations' / f'instances_{split}.json').write_text(
            json.dumps(dict(images=images, annotations=annotations, categories=categories)))
    return str(root) + '/'


def _toy_train_dataset(data_root, test_mode=False, **options):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmddetr.registry import DATASETS
    cfg = Config.fromfile(PLAIN_TOY)
    cfg.merge_from_dict({'train_dataloader.dataset.data_root': data_root, **options})
    with DefaultScope.overwrite_default_scope('mmddetr'):
        return DATASETS.build(dict(cfg.train_dataloader.dataset, test_mode=test_mode))


def _png(image):
    return cv2.imencode('.png', image)[1].tobytes()


def test_gray_rgba_and_16_bit_load_as_bgr_uint8(tmp_path):
    formats = _formats()
    data_root = _toy_root(tmp_path, {f'{name}.png': _png(image) for name, (image, _) in formats.items()})
    for name, (_, expected) in formats.items():
        img = LoadImageFromFile()(dict(img_path=f'{data_root}train/{name}.png'))['img']
        assert img.dtype == np.uint8 and np.array_equal(img, expected), name
    dataset = _toy_train_dataset(data_root)  # the toy config's train pipeline, end to end
    for i, name in enumerate(formats):
        inputs = dataset[i]['inputs']
        assert inputs.dtype == torch.uint8 and inputs.shape == (3, 192, 256), name  # resized to the 256 scale
        assert dataset[i]['data_samples'].img_path.endswith(f'{name}.png')
    gray = dataset[0]['inputs']
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])


def _bad_files():
    """{name: content}: undecodable files; None: no file; a dict: a folder."""
    png = _png(np.zeros((36, 48, 3), np.uint8))
    jpg = cv2.imencode('.jpg', np.random.default_rng(0).integers(0, 256, (36, 48, 3), np.uint8))[1].tobytes()
    return {'truncated.png': png[:len(png) // 2], 'truncated.jpg': jpg[:-100], 'empty.png': b'',
            'text.png': b'not an image', 'missing.png': None, 'folder.png': {}}


@pytest.mark.parametrize('name', list(_bad_files()))
def test_bad_image_file_is_named(tmp_path, name):
    data_root = _toy_root(tmp_path, _bad_files())
    path, content = f'{data_root}train/{name}', _bad_files()[name]
    if content is None:
        error, message = FileNotFoundError, f'image file not found: {path} (data_root + data_prefix.img'
    elif isinstance(content, dict):
        error, message = OSError, f'cannot read image file {path}: '
    else:
        error, message = OSError, f'cannot decode image file {path} ({len(content)} bytes): empty, truncated, corrupt'
    with pytest.raises(error, match=re.escape(message)):
        LoadImageFromFile()(dict(img_path=path))
    if not isinstance(content, bytes):  # the dataset stops when it is built (tests/datasets/test_coco.py)
        with pytest.raises(DatasetError, match=re.escape(f'{path}')):
            _toy_train_dataset(data_root)
        return
    dataset = _toy_train_dataset(data_root, **{'train_dataloader.dataset.on_missing_image': 'skip'})
    index = [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))].index(path)
    with pytest.raises(error, match=re.escape(message)):
        dataset[index]


def test_skip_draws_another_image_and_warns(tmp_path, logged_warnings):
    undecodable = {name: content for name, content in _bad_files().items() if isinstance(content, bytes)}
    files = dict(undecodable, **{'good.png': _png(np.zeros((36, 48, 3), np.uint8))})
    data_root = _toy_root(tmp_path, files)
    option = {'train_dataloader.dataset.pipeline.0.on_error': 'skip'}  # --cfg-options spelling
    dataset = _toy_train_dataset(data_root, **option)
    assert dataset.pipeline.transforms[0].on_error == 'skip'
    sample = dataset[0]  # truncated: another index is drawn until the good image comes
    assert sample['data_samples'].img_path == f'{data_root}train/good.png'
    assert f'cannot decode image file {data_root}train/truncated.png' in logged_warnings[0]
    assert all(message.endswith('skipped (on_error=skip), another image is drawn') for message in logged_warnings)
    with pytest.raises(Exception, match='Test time pipline should not get `None`'):  # mmengine's, in test mode
        _toy_train_dataset(data_root, test_mode=True, **option)[0]


def test_on_error_is_checked():
    with pytest.raises(DatasetError, match="on_error must be 'raise' or 'skip', got 'ignore'"):
        LoadImageFromFile(on_error='ignore')
    assert LoadImageFromFile(ignore_empty=True).on_error == 'skip'
