"""check_data_exists: a missing annotation file stops with the config key, where the data must be and the caller's
hint; datasets whose class declares ``makes_own_data`` are not asked for files."""
import re

import pytest
from mmengine.config import Config

from mmddetr.engine import check_data_exists

TOY = 'configs/toy/deformable_detr_r18_toy_refine_twostage.py'


def test_missing_annotations_name_the_key_and_the_place_and_end_with_the_hint(tmp_path):
    cfg = Config.fromfile('configs/deformable_detr_r50.py')
    cfg.merge_from_dict({'train_dataloader.dataset.data_root': f'{tmp_path}/coco/'})
    root = re.escape(f'{tmp_path}/coco/')
    with pytest.raises(FileNotFoundError, match=rf'^train_dataloader.dataset.ann_file: {root}annotations/instances_'
                                                r'train2017.json not found. Put the dataset under .*--cfg-options. '
                                                r'Try the toy config.$'):
        check_data_exists(cfg, ('train_dataloader', 'val_dataloader'), 'Try the toy config.')
    with pytest.raises(FileNotFoundError, match=r'with --cfg-options.$'):
        check_data_exists(cfg, ('train_dataloader', ))


def test_a_dataset_that_makes_its_own_data_is_not_asked_for_files(tmp_path):
    cfg = Config.fromfile(TOY)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg.merge_from_dict({f'{loader}.dataset.data_root': f'{tmp_path}/toy/'})
    check_data_exists(cfg, ('train_dataloader', 'val_dataloader', 'test_dataloader'))  # ToyShapesDataset
    cfg.merge_from_dict({'train_dataloader.dataset.type': 'CocoDataset'})
    with pytest.raises(FileNotFoundError, match='^train_dataloader.dataset.ann_file: '):
        check_data_exists(cfg, ('train_dataloader', 'val_dataloader'))
