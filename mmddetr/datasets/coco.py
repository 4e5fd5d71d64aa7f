"""mmdet's ``CocoDataset`` with checked annotations and images: a file that is not COCO JSON, mismatched classes,
unknown category ids and images missing on disk stop with an error naming the file and what was expected when the
dataset is built (mmdet drops such annotations silently, the classic cause of an AP stuck at 0, and meets a missing
image only when it is drawn, hours into training); the boxes it drops or clips are summarised in one warning."""
import json
import logging
import math
import os.path as osp
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence, Union

from mmdet.datasets import CocoDataset as MMDetCocoDataset
from mmdet.datasets.api_wrappers import COCO
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.logging import print_log

from mmddetr.registry import DATASETS

_REQUIRED_KEYS = ('bbox', 'area')  # of each annotation we use; the layout's keys are checked when the file is read
# the lists of an annotation file, and the keys (with their types) that pycocotools and mmdet read from their entries
_NUMBER = (int, float)
_LAYOUT = dict(images=dict(id=object, file_name=str, width=_NUMBER, height=_NUMBER),
               categories=dict(id=object, name=str), annotations=dict(id=object, image_id=object, category_id=object))
_EXPECTED_LAYOUT = 'expected a JSON object with "images", "categories" and (for training) "annotations" lists'


class DatasetError(ValueError):
    """A dataset that cannot be built from its files and arguments; the message names the file or argument and what
    was expected."""


class _CheckedCOCO(COCO):
    """mmdet's COCO API on a file checked to be COCO JSON (see :class:`CocoDataset`): ``DatasetError`` naming the
    file where pycocotools would raise a ``JSONDecodeError`` without it, or a ``KeyError`` while indexing."""

    def __init__(self, annotation_file: str) -> None:
        self.annotation_file = annotation_file
        try:
            super().__init__(annotation_file)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise DatasetError(f'{annotation_file}: not a JSON file: {error}') from error
        except AssertionError as error:  # pycocotools: the JSON is no object
            raise DatasetError(f'{annotation_file}: {error}: {_EXPECTED_LAYOUT}') from error

    def createIndex(self) -> None:
        _check_layout(self.dataset, self.annotation_file)
        super().createIndex()


def _check_layout(dataset: dict, file: str) -> None:
    """``DatasetError`` unless ``dataset`` has the lists and keys of :data:`_LAYOUT` and unique ids in each list."""
    if not isinstance(dataset, dict):
        raise DatasetError(f'{file}: {_EXPECTED_LAYOUT}, got a {type(dataset).__name__}')
    for section, keys in _LAYOUT.items():
        entries = dataset.get(section)
        if entries is None and section == 'annotations':  # test files list images only
            continue
        if not isinstance(entries, list):
            got = f'{section!r} is a {type(entries).__name__}' if section in dataset else f'no {section!r}'
            raise DatasetError(f'{file}: {_EXPECTED_LAYOUT}, got {got}')
        typed = [(key, kind) for key, kind in keys.items() if kind is not object]
        if not (all(isinstance(entry, dict) and keys.keys() <= entry.keys() for entry in entries)
                and all(isinstance(entry[key], kind) for key, kind in typed for entry in entries)):
            index, entry, invalid = next((i, e, _invalid_keys(e, keys)) for i, e in enumerate(entries)
                                         if _invalid_keys(e, keys))
            raise DatasetError(f'{file}: {section}[{index}] has no valid {", ".join(invalid)} (expected an object '
                               f'with {_describe_keys(keys)}), got {json.dumps(entry)[:100]}')
        if len({entry['id'] for entry in entries}) < len(entries):
            repeated = [i for i, count in Counter(entry['id'] for entry in entries).items() if count > 1]
            raise DatasetError(f'{file}: the ids of {section!r} must be unique; {len(repeated)} repeat: '
                               f'{_first(repeated)}')


def _invalid_keys(entry: dict, keys: Dict[str, type]) -> List[str]:
    return [key for key, kind in keys.items()
            if not isinstance(entry, dict) or key not in entry or not isinstance(entry[key], kind)]


def _describe_keys(keys: Dict[str, type]) -> str:
    names = {str: 'a string', _NUMBER: 'a number'}
    return ', '.join(key if kind is object else f'{key} ({names[kind]})' for key, kind in keys.items())


@DATASETS.register_module()
class CocoDataset(MMDetCocoDataset):
    """mmdet's ``CocoDataset`` (same name, so configs in scope ``'mmddetr'`` use it) with its annotation file and
    images checked when it is built.

    - A file that is not JSON, or not a JSON object with ``images`` and ``categories`` lists (``annotations``
      optional, as in test files), whose entries lack a key pycocotools or mmdet reads, or whose ids repeat:
      ``DatasetError`` naming the file and the entry.
    - Every class in ``metainfo['classes']`` must be a category name of the annotation file, in the file's category
      order (labels follow that order in mmdet's dataset and ``CocoMetric``); otherwise ``DatasetError`` naming the
      file, the classes and the file's categories. A subset of the categories is fine: annotations of the others are
      ignored, as in mmdet, and counted in the warning.
    - An annotation whose ``category_id`` is not among the file's categories, or without ``bbox`` or ``area``, or
      with a ``bbox`` that is not [x, y, w, h]: ``DatasetError`` naming the file, the annotation and
      image ids, the unknown category ids and the dataset's classes with their ids.
    - Boxes mmdet drops (width or height under 1 px, negative or non-finite, ``area`` <= 0, or no overlap with the
      image) are dropped, and boxes partly outside the image are clipped to it (mmdet's ``Resize`` and
      ``RandomCrop`` clip them anyway); annotations of image ids the file does not list are unused, as in mmdet. One
      warning per file gives the counts and the first annotation ids.
    - Images that are not files at ``data_root`` + ``data_prefix.img`` + ``file_name`` (one ``os.path.isfile``
      each; images on a remote storage backend are not checked): ``DatasetError`` with their number and the first
      paths, or with ``on_missing_image='skip'`` a warning, and the dataset goes on without them (unless none is
      there). Filters (``filter_cfg``) that leave no image: ``DatasetError``.

    On a valid COCO file the instances are mmdet's.

    Args:
        on_missing_image (str): ``'raise'`` or ``'skip'`` (see above). Default: ``'raise'``.
        **kwargs: mmdet's ``CocoDataset``'s.
    """
    COCOAPI = _CheckedCOCO

    def __init__(self, *args, on_missing_image: str = 'raise', **kwargs) -> None:
        if on_missing_image not in ('raise', 'skip'):
            raise DatasetError(f"{type(self).__name__}: on_missing_image must be 'raise' or 'skip', got "
                               f'{on_missing_image!r}')
        self.on_missing_image = on_missing_image
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        """mmdet's, with the annotations and image files checked (see the class docstring)."""
        self._checks = _AnnotationChecks(self.ann_file)
        data_list = super().load_data_list()
        self._checks.report()
        del self._checks
        return self._with_image_files(data_list)

    def filter_data(self) -> List[dict]:
        """mmdet's; ``DatasetError`` when no image is left."""
        data_list = super().filter_data()
        if not data_list:
            reason = (f'filter_cfg {self.filter_cfg} drops all {len(self.data_list)} of its images (filter_empty_gt '
                      f'keeps only images with annotations of the dataset classes {self.metainfo["classes"]}, '
                      'min_size only images at least that large)') if self.data_list else 'it lists no image'
            raise DatasetError(f'{self.ann_file}: no images to use: {reason}')
        return data_list

    def _with_image_files(self, data_list: List[dict]) -> List[dict]:
        """``data_list`` if its images are files; otherwise ``DatasetError``, or with ``on_missing_image='skip'``
        the images that are, with a warning."""
        prefix = self.data_prefix.get('img', '')
        if not isinstance(get_file_backend(prefix, backend_args=self.backend_args), LocalBackend):
            return data_list  # a request per image would be slow; LoadImageFromFile names a missing image when drawn
        missing = [info['img_path'] for info in data_list if not osp.isfile(info['img_path'])]
        if not missing:
            return data_list
        message = (f'{self.ann_file}: {len(missing)} of its {len(data_list)} images are not files at data_root + '
                   f'data_prefix.img + file_name: {_first(missing, 3)}')
        if len(missing) == len(data_list):
            raise DatasetError(f'{message}; none is there: data_root or data_prefix.img is probably wrong')
        if self.on_missing_image == 'raise':
            raise DatasetError(f"{message}; put them there, or set the dataset's on_missing_image='skip' to leave "
                               'them out')
        print_log(f"{message}; left out (on_missing_image='skip')", logger='current', level=logging.WARNING)
        missing = set(missing)
        return [info for info in data_list if info['img_path'] not in missing]

    def parse_data_info(self, raw_data_info: dict) -> Union[dict, List[dict]]:
        """mmdet's, on the annotations that pass the checks, with boxes clipped to the image."""
        checks, img_info = self._checks, raw_data_info['raw_img_info']
        if checks.categories is None:
            checks.set_file(self.coco, self.metainfo['classes'], self.cat_ids)
        kept = [ann for ann in raw_data_info['raw_ann_info'] if checks.keep(ann, img_info)]
        data_info = super().parse_data_info(dict(raw_data_info, raw_ann_info=kept))
        for ann, instance in zip(kept, data_info['instances']):
            instance['bbox'] = checks.clip(ann, instance['bbox'], img_info['width'], img_info['height'])
        return data_info


class _AnnotationChecks:
    """Checks one annotation file's annotations and collects what to report."""

    def __init__(self, ann_file: str) -> None:
        self.ann_file = ann_file
        self.categories = None  # file's category id -> name
        self.cat_ids: Sequence[int] = ()  # the classes' category ids, in label order
        self.total = 0
        self.unknown: List[tuple] = []  # (annotation id, image id, category id)
        self.outside_classes: Counter = Counter()  # category id -> annotations
        self.dropped: Dict[str, List[int]] = defaultdict(list)  # reason -> annotation ids
        self.clipped: List[int] = []
        self.unlisted_images: List[int] = []  # ids of annotations of image ids the file does not list

    def set_file(self, coco: COCO, classes: Sequence[str], cat_ids: Sequence[int]) -> None:
        """The file's categories and annotations; the dataset's classes must be among the category names, in their
        order."""
        self.unlisted_images = [ann['id'] for img_id, anns in coco.imgToAnns.items() if img_id not in coco.imgs
                                for ann in anns]
        self.categories = {cat_id: cat['name'] for cat_id, cat in coco.cats.items()}
        self.cat_ids, self.class_cat_ids = cat_ids, set(cat_ids)
        missing = [name for name in classes if name not in self.categories.values()]
        if missing:
            raise DatasetError(f'{self.ann_file}: the dataset classes {missing} are not category names of the '
                               f'annotation file, whose categories are {self._describe(self.categories)}; set the '
                               "dataset's metainfo=dict(classes=(...)) to these names (or a subset, in this order)")
        in_file_order = tuple(self.categories[cat_id] for cat_id in cat_ids)
        if in_file_order != tuple(classes):
            raise DatasetError(f'{self.ann_file}: the dataset classes must be in the order of the annotation file\'s '
                               f'categories (labels follow it): expected {in_file_order}, got {tuple(classes)}')

    def keep(self, ann: dict, img_info: dict) -> bool:
        """Whether mmdet would use ``ann``; records why not. Raises on malformed annotations."""
        self.total += 1
        if ann.get('ignore', False):
            return False
        self._check_format(ann)
        cat_id = ann['category_id']
        if cat_id not in self.categories:
            self.unknown.append((ann['id'], ann['image_id'], cat_id))
            return False
        if cat_id not in self.class_cat_ids:
            self.outside_classes[cat_id] += 1
            return False
        reason = _box_problem(ann, img_info['width'], img_info['height'])
        if reason:
            self.dropped[reason].append(ann['id'])
        return reason is None

    def clip(self, ann: dict, bbox: List[float], width: int, height: int) -> List[float]:
        """``bbox`` (x1, y1, x2, y2) clipped to the image; records the annotation if it changed."""
        clipped = [max(bbox[0], 0), max(bbox[1], 0), min(bbox[2], width), min(bbox[3], height)]
        if clipped != bbox:
            self.clipped.append(ann['id'])
        return clipped

    def report(self) -> None:
        """Raise on unknown category ids; warn once about dropped, clipped and ignored annotations."""
        if self.unknown:
            raise DatasetError(self._unknown_message())
        notes = [f'{len(ids)} {reason} (ids {_first(ids)})' for reason, ids in self.dropped.items()]
        if self.unlisted_images:
            notes.append(f'{len(self.unlisted_images)} for image ids not among the file\'s images, unused (ids '
                         f'{_first(self.unlisted_images)})')
        if self.clipped:
            notes.append(f'{len(self.clipped)} partly outside the image, clipped to it (ids {_first(self.clipped)})')
        if self.outside_classes:
            counts = ', '.join(f'{self.categories[c]!r} (id {c}): {n}' for c, n in self.outside_classes.most_common())
            notes.append(f'ignored, their categories are not among the dataset classes: {counts}')
            if sum(self.outside_classes.values()) > self.total / 2:
                notes.append('most annotations are ignored: if that is not intended, the dataset classes probably '
                             'do not match the annotation file')
        if notes:
            total = self.total + len(self.unlisted_images)
            print_log(f'{self.ann_file}: of {total} annotations, ' + '; '.join(notes), logger='current',
                      level=logging.WARNING)

    def _check_format(self, ann: dict) -> None:
        missing = [key for key in _REQUIRED_KEYS if key not in ann]
        bbox = ann.get('bbox')
        if missing or not (isinstance(bbox, (list, tuple)) and len(bbox) == 4
                           and all(isinstance(v, (int, float)) for v in bbox)):
            problem = f'has no {missing}' if missing else f'has bbox {bbox!r}, expected [x, y, w, h]'
            raise DatasetError(f'{self.ann_file}: annotation id {ann.get("id")} (image id {ann.get("image_id")}) '
                               f'{problem}')

    def _unknown_message(self) -> str:
        ann_id, img_id, _ = self.unknown[0]
        unknown_ids = sorted({cat_id for _, _, cat_id in self.unknown}, key=str)
        known = self._describe({c: self.categories[c] for c in self.cat_ids})
        message = (f'{self.ann_file}: {len(self.unknown)} of {self.total} annotations have category ids that are '
                   f'not among the file\'s categories: {unknown_ids} (first: annotation id {ann_id}, image id '
                   f'{img_id}); the dataset classes are {known}')
        if len(self.unknown) > self.total / 2:
            message += ('; most annotations are affected: the category ids are probably shifted (e.g. 0-based) or '
                        'the annotation file\'s categories do not match its annotations')
        return message

    @staticmethod
    def _describe(categories: Dict[int, str]) -> str:
        return '{' + ', '.join(f'{cat_id}: {name!r}' for cat_id, name in categories.items()) + '}'


def _box_problem(ann: dict, width: int, height: int) -> Optional[str]:
    """Why mmdet's ``CocoDataset`` would drop this box, or None."""
    x, y, w, h = ann['bbox']
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return 'with non-finite coordinates'
    if w < 0 or h < 0:
        return 'with negative width or height'
    if w < 1 or h < 1 or ann['area'] <= 0:
        return 'under 1 px wide or high, or of zero area'
    if min(x + w, width) <= max(x, 0) or min(y + h, height) <= max(y, 0):
        return 'outside the image'
    return None


def _first(items: list, count: int = 5) -> str:
    return ', '.join(str(i) for i in items[:count]) + (', ...' if len(items) > count else '')
