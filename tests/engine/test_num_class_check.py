"""A head whose num_classes differs from the dataset's classes stops the run before its first iteration."""
import pytest

from mmddetr.datasets import make_toy_dataset
from toy_configs import PLAIN_TOY


def test_class_count_mismatch_stops_training(tmp_path):
    from mmddetr.engine import build_runner, load_config

    root = str(tmp_path / 'toy') + '/'
    make_toy_dataset(root, num_train=4, num_val=2, size=64)
    options = {f'{loader}.dataset.data_root': root for loader in ('train_dataloader', 'val_dataloader')}
    options['val_evaluator.ann_file'] = root + 'annotations/instances_val.json'  # no data/toy/ needed
    options.update({'train_dataloader.num_workers': 0, 'train_dataloader.persistent_workers': False,
                    'train_cfg.max_iters': 1, 'model.bbox_head.num_classes': 4})
    runner = build_runner(load_config(PLAIN_TOY, options, work_dir=str(tmp_path / 'work')))
    with pytest.raises(AssertionError, match=r'The `num_classes` \(4\) in DeformableDETRHead of DeformableDETR does '
                                             r'not matches the length of `classes` 5\) in ToyShapesDataset'):
        runner.train()
    assert runner.iter == 0
