"""Procedural COCO-format toy detection data: coloured shapes on textured noise, deterministic by seed.

Five classes (circle, square, triangle, ring, cross), 1-8 objects per image with some overlap, sizes from 8 px (the
small objects deformable attention is about) to about half the image. Used by ``configs/toy/`` so that training,
testing and inference run on a fresh machine with no COCO and no network.
"""
import json
import os
import os.path as osp
import shutil
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from mmddetr.registry import DATASETS
from .coco import CocoDataset, DatasetError

TOY_CLASSES = ('circle', 'square', 'triangle', 'ring', 'cross')


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth colour noise plus fine grain: texture the shapes must be told apart from."""
    coarse = rng.integers(40, 216, (size // 16 + 1, size // 16 + 1, 3)).astype(np.uint8)
    image = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    image += rng.integers(-20, 21, (size, size, 3), dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


def _draw(image: np.ndarray, label: int, cx: float, cy: float, s: float, colour: Tuple[int, int, int],
          angle: float) -> Optional[List[float]]:
    """Draw shape ``label`` of size ``s`` centred at (cx, cy); return its tight box [x, y, w, h] in the image."""
    mask = np.zeros(image.shape[:2], np.uint8)
    centre = (int(round(cx)), int(round(cy)))
    r = s / 2
    if label == 0:  # circle
        cv2.circle(mask, centre, max(int(round(r)), 2), 255, -1, cv2.LINE_AA)
    elif label == 1:  # square, rotated
        box = cv2.boxPoints(((cx, cy), (s * 0.8, s * 0.8), angle))
        cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 255, cv2.LINE_AA)
    elif label == 2:  # triangle, rotated
        t = np.deg2rad(angle) + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
        pts = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255, cv2.LINE_AA)
    elif label == 3:  # ring
        cv2.circle(mask, centre, max(int(round(r)), 2), 255, max(int(round(r * 0.35)), 2), cv2.LINE_AA)
    else:  # cross
        arm = max(int(round(s * 0.22)), 2)
        rect = cv2.boxPoints(((cx, cy), (s, arm), angle))
        cv2.fillPoly(mask, [np.round(rect).astype(np.int32)], 255, cv2.LINE_AA)
        rect = cv2.boxPoints(((cx, cy), (arm, s), angle))
        cv2.fillPoly(mask, [np.round(rect).astype(np.int32)], 255, cv2.LINE_AA)
    ys, xs = np.nonzero(mask > 127)
    if len(xs) == 0:
        return None
    alpha = (mask.astype(np.float32) / 255)[..., None]
    image[:] = (image * (1 - alpha) + np.array(colour, np.float32) * alpha).astype(np.uint8)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def make_toy_image(rng: np.random.Generator, size: int = 256) -> Tuple[np.ndarray, List[Dict]]:
    """One image (size x size x 3, BGR) and its annotations (``bbox`` [x, y, w, h], ``category_id`` 1-5)."""
    image = _background(rng, size)
    annotations = []
    for _ in range(int(rng.integers(1, 9))):
        label = int(rng.integers(0, len(TOY_CLASSES)))
        s = float(np.exp(rng.uniform(np.log(8), np.log(size / 2))))  # log-uniform: many small objects
        cx, cy = rng.uniform(s / 2, size - s / 2, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        bbox = _draw(image, label, cx, cy, s, colour, float(rng.uniform(0, 360)))
        if bbox is not None and bbox[2] >= 2 and bbox[3] >= 2:
            annotations.append(dict(bbox=bbox, category_id=label + 1))
    return image, annotations


def make_toy_dataset(root: str, num_train: int = 2000, num_val: int = 200, size: int = 256, seed: int = 0) -> None:
    """Write ``root/{train,val}/*.png`` and ``root/annotations/instances_{train,val}.json`` (COCO format).

    Deterministic: the same arguments give byte-identical files. A split whose annotation file exists is kept.
    Images are written to a temporary folder and moved into place, the annotation file last, so an interrupted run
    never leaves a half-made split that looks complete.
    """
    categories = [dict(id=i + 1, name=name, supercategory='shape') for i, name in enumerate(TOY_CLASSES)]
    os.makedirs(root, exist_ok=True)
    for split, count, split_seed in (('train', num_train, seed), ('val', num_val, seed + 1_000_003)):
        ann_file = osp.join(root, 'annotations', f'instances_{split}.json')
        if osp.exists(ann_file):
            continue
        rng = np.random.default_rng(split_seed)
        tmp_dir = osp.join(root, f'.{split}.{os.getpid()}.tmp')  # per process: ranks may make it at once
        os.makedirs(tmp_dir, exist_ok=True)
        images, annotations = [], []
        for image_id in range(1, count + 1):
            image, anns = make_toy_image(rng, size)
            file_name = f'{image_id:06d}.png'
            cv2.imwrite(osp.join(tmp_dir, file_name), image)
            images.append(dict(id=image_id, file_name=file_name, height=size, width=size))
            for ann in anns:
                w, h = ann['bbox'][2:]
                annotations.append(dict(id=len(annotations) + 1, image_id=image_id, iscrowd=0, area=w * h, **ann))
        try:
            os.replace(tmp_dir, osp.join(root, split))
        except OSError:  # another process moved its identical images in first
            shutil.rmtree(tmp_dir)
        os.makedirs(osp.dirname(ann_file), exist_ok=True)
        tmp_file = f'{ann_file}.{os.getpid()}.tmp'
        with open(tmp_file, 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)
        os.replace(tmp_file, ann_file)


@DATASETS.register_module()
class ToyShapesDataset(CocoDataset):
    """Our checked ``CocoDataset`` over the toy shapes, made on first use under ``data_root`` (``make_toy_dataset``);
    a ``data_root`` that is empty, a file, or cannot be made or written: ``DatasetError``, nothing written.

    Args:
        num_train (int): Training images to make. Default: 2000.
        num_val (int): Validation images to make. Default: 200.
        image_size (int): Side of the square images. Default: 256.
        seed (int): Seed of the procedural generator. Default: 0.
        **kwargs: ``CocoDataset``'s (``data_root``, ``ann_file``, ``data_prefix``, ``pipeline``, ...).
    """

    makes_own_data = True  # so tools/train.py and tools/test.py do not ask for its files (engine.check_data_exists)
    METAINFO = dict(classes=TOY_CLASSES,
                    palette=[(220, 20, 60), (0, 130, 230), (0, 180, 80), (250, 170, 30), (150, 60, 200)])

    def __init__(self, *args, num_train: int = 2000, num_val: int = 200, image_size: int = 256, seed: int = 0,
                 **kwargs) -> None:
        data_root = kwargs.get('data_root')
        expected = 'expected the folder where the toy data is (or will be) made, e.g. data/toy/'
        if not data_root:
            raise DatasetError(f'ToyShapesDataset: data_root is {data_root!r}; {expected}')
        if osp.exists(data_root) and not osp.isdir(data_root):
            raise DatasetError(f'ToyShapesDataset: data_root {data_root} is a file; {expected}')
        try:
            make_toy_dataset(data_root, num_train=num_train, num_val=num_val, size=image_size, seed=seed)
        except OSError as error:  # a folder that cannot be made or written: its name and the reason
            raise DatasetError(
                f'ToyShapesDataset: cannot make the toy data under data_root {data_root}: {error}') from error
        super().__init__(*args, **kwargs)
