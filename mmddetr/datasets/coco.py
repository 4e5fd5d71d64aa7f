"""mmdet's ``CocoDataset`` with checked annotations: mismatched classes and unknown category ids stop with an error
naming the file and the ids (mmdet drops such annotations silently, the classic cause of an AP stuck at 0), and the
boxes it drops or clips are summarised in one warning."""
import logging
import math
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence, Union

from mmdet.datasets import CocoDataset as MMDetCocoDataset
from mmengine.logging import print_log

from mmddetr.registry import DATASETS

_REQUIRED_KEYS = ('bbox', 'area')  # pycocotools itself needs id, image_id and category_id


@DATASETS.register_module()
class CocoDataset(MMDetCocoDataset):
    """mmdet's ``CocoDataset`` (same name, so configs in scope ``'mmddetr'`` use it) with its annotations checked.

    - Every class in ``metainfo['classes']`` must be a category name of the annotation file, in the file's category
      order (labels follow that order in mmdet's dataset and ``CocoMetric``); otherwise ``ValueError`` naming the
      file, the classes and the file's categories. A subset of the categories is fine: annotations of the others are
      ignored, as in mmdet, and counted in the warning.
    - An annotation whose ``category_id`` is not among the file's categories, or without ``bbox`` or ``area``, or
      with a ``bbox`` that is not [x, y, w, h]: ``ValueError`` naming the file, the annotation and
      image ids, the unknown category ids and the dataset's classes with their ids.
    - Boxes mmdet drops (width or height under 1 px, negative or non-finite, ``area`` <= 0, or no overlap with the
      image) are dropped, and boxes partly outside the image are clipped to it (mmdet's ``Resize`` and
      ``RandomCrop`` clip them anyway); one warning per file gives the counts and the first annotation ids.

    On a valid COCO file the instances are mmdet's.
    """

    def load_data_list(self) -> List[dict]:
        """mmdet's, with the annotations checked (see the class docstring)."""
        self._checks = _AnnotationChecks(self.ann_file)
        data_list = super().load_data_list()
        self._checks.report()
        del self._checks
        return data_list

    def parse_data_info(self, raw_data_info: dict) -> Union[dict, List[dict]]:
        """mmdet's, on the annotations that pass the checks, with boxes clipped to the image."""
        checks, img_info = self._checks, raw_data_info['raw_img_info']
        if checks.categories is None:
            checks.set_categories(self.coco.cats, self.metainfo['classes'], self.cat_ids)
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

    def set_categories(self, cats: dict, classes: Sequence[str], cat_ids: Sequence[int]) -> None:
        """The file's categories; the dataset's classes must be among their names, in their order."""
        self.categories = {cat_id: cat['name'] for cat_id, cat in cats.items()}
        self.cat_ids, self.class_cat_ids = cat_ids, set(cat_ids)
        missing = [name for name in classes if name not in self.categories.values()]
        if missing:
            raise ValueError(f'{self.ann_file}: the dataset classes {missing} are not category names of the '
                             f'annotation file, whose categories are {self._describe(self.categories)}; set '
                             f"the dataset's metainfo=dict(classes=(...)) to these names (or a subset, in this order)")
        in_file_order = tuple(self.categories[cat_id] for cat_id in cat_ids)
        if in_file_order != tuple(classes):
            raise ValueError(f'{self.ann_file}: the dataset classes must be in the order of the annotation file\'s '
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
            raise ValueError(self._unknown_message())
        notes = [f'{len(ids)} {reason} (ids {_first(ids)})' for reason, ids in self.dropped.items()]
        if self.clipped:
            notes.append(f'{len(self.clipped)} partly outside the image, clipped to it (ids {_first(self.clipped)})')
        if self.outside_classes:
            counts = ', '.join(f'{self.categories[c]!r} (id {c}): {n}' for c, n in self.outside_classes.most_common())
            notes.append(f'ignored, their categories are not among the dataset classes: {counts}')
            if sum(self.outside_classes.values()) > self.total / 2:
                notes.append('most annotations are ignored: if that is not intended, the dataset classes probably '
                             'do not match the annotation file')
        if notes:
            print_log(f'{self.ann_file}: of {self.total} annotations, ' + '; '.join(notes), logger='current',
                      level=logging.WARNING)

    def _check_format(self, ann: dict) -> None:
        missing = [key for key in _REQUIRED_KEYS if key not in ann]
        bbox = ann.get('bbox')
        if missing or not (isinstance(bbox, (list, tuple)) and len(bbox) == 4
                           and all(isinstance(v, (int, float)) for v in bbox)):
            problem = f'has no {missing}' if missing else f'has bbox {bbox!r}, expected [x, y, w, h]'
            raise ValueError(f'{self.ann_file}: annotation id {ann.get("id")} (image id {ann.get("image_id")}) '
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


def _first(ids: List[int], count: int = 5) -> str:
    return ', '.join(str(i) for i in ids[:count]) + (', ...' if len(ids) > count else '')
