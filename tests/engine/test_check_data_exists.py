"""check_data_exists: a missing annotation file of a dataset or of its evaluator stops with the config key, where the
data must be and the caller's hint; datasets whose class declares ``makes_own_data`` are not asked for files."""
import re

import pytest
from mmengine.config import Config

from mmddetr.engine import check_data_exists
from toy_configs import MAIN_TOY


def test_missing_annotations_name_the_key_and_the_place_and_end_with_the_hint(tmp_path):
    cfg = Config.fromfile('configs/deformable_detr_r50.py')
    cfg.merge_from_dict({'train_dataloader.dataset.data_root': f'{tmp_path}/coco/'})
    root = re.escape(f'{tmp_path}/coco/')
    with pytest.raises(FileNotFoundError, match=rf'^train_dataloader.dataset.ann_file: {root}annotations/instances_'
                                                r'train2017.json not found. Put the dataset under .*, or set '
                                                r'train_dataloader.dataset.data_root with --cfg-options. '
                                                r'Try the toy config.$'):
        check_data_exists(cfg, ('train_dataloader', 'val_dataloader'), 'Try the toy config.')
    with pytest.raises(FileNotFoundError, match=r'with --cfg-options.$'):
        check_data_exists(cfg, ('train_dataloader', ))


def test_evaluator_annotations_must_exist_too(tmp_path):
    cfg = Config.fromfile('configs/deformable_detr_r50.py')
    (tmp_path / 'annotations').mkdir()
    for split in ('train', 'val'):
        (tmp_path / 'annotations' / f'instances_{split}2017.json').touch()
        cfg.merge_from_dict({f'{split}_dataloader.dataset.data_root': f'{tmp_path}/'})
    cfg.merge_from_dict({'val_evaluator.ann_file': f'{tmp_path}/val.json'})
    with pytest.raises(FileNotFoundError, match=rf'^val_evaluator.ann_file: {tmp_path}/val.json not found; expected '
                                                r'the annotation file of val_dataloader.dataset: set it with '
                                                r'--cfg-options$'):
        check_data_exists(cfg, ('train_dataloader', 'val_dataloader'))
    cfg.val_evaluator = [dict(type='CocoMetric', ann_file=f'{tmp_path}/annotations/instances_val2017.json'),
                         dict(type='CocoMetric', ann_file=f'{tmp_path}/val.json')]
    with pytest.raises(FileNotFoundError, match=r'^val_evaluator.1.ann_file: '):
        check_data_exists(cfg, ('train_dataloader', 'val_dataloader'))
    cfg.val_evaluator.pop()
    check_data_exists(cfg, ('train_dataloader', 'val_dataloader'))


def test_a_dataset_that_makes_its_own_data_is_not_asked_for_files(tmp_path):
    cfg = Config.fromfile(MAIN_TOY)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg.merge_from_dict({f'{loader}.dataset.data_root': f'{tmp_path}/toy/'})
    cfg.merge_from_dict({'val_evaluator.ann_file': f'{tmp_path}/other/annotations/instances_val.json'})
    with pytest.raises(FileNotFoundError, match=rf'^val_evaluator.ann_file: {tmp_path}/other/annotations/'):
        check_data_exists(cfg, ('train_dataloader', 'val_dataloader'))  # not the file the dataset makes
    for evaluator in ('val_evaluator', 'test_evaluator'):
        cfg.merge_from_dict({f'{evaluator}.ann_file': f'{tmp_path}/toy/annotations/instances_val.json'})
    check_data_exists(cfg, ('train_dataloader', 'val_dataloader', 'test_dataloader'))  # ToyShapesDataset makes them
    cfg.merge_from_dict({'train_dataloader.dataset.type': 'CocoDataset'})
    with pytest.raises(FileNotFoundError, match='^train_dataloader.dataset.ann_file: '):
        check_data_exists(cfg, ('train_dataloader', 'val_dataloader'))
