"""README: what the main job and the toy data are when no option is given."""
import inspect
import math
import os
import os.path as osp
import re

import pytest
from mmengine.config import Config

from tool_runs import TOY

TOOLS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools')


@pytest.fixture
def tools(monkeypatch):
    monkeypatch.syspath_prepend(TOOLS)


def test_main_job_defaults_to_4800_images_of_the_main_config_in_a_new_dated_folder(tools):
    """'python tools/toy_demo.py' trains configs/toy/deformable_detr_r18_toy_refine_twostage.py on 4,800 training
    images, 1,200 iterations (the config's own, so its rate drop stays after 1,000), with no time cap, into a new
    work_dirs/toy_demo_<time>/."""
    import toy_demo

    args = toy_demo.parse_args([])
    assert args.images == 4800 and args.config == TOY and args.minutes is None
    assert re.fullmatch(r'work_dirs/toy_demo_\d{8}_\d{6}', args.work_dir), args.work_dir
    cfg = Config.fromfile(TOY)
    assert math.ceil(args.images / cfg.train_dataloader.batch_size) == cfg.train_cfg.max_iters == 1200


def test_toy_data_defaults_to_2000_train_and_200_val_images_of_256_px(tools):
    """The main job makes data/toy/ on first use (ToyShapesDataset with the toy configs' arguments), and
    tools/make_toy_dataset.py makes the same by default: 2,000 train and 200 val images of 256 px, seed 0."""
    import make_toy_dataset as tool

    from mmddetr.datasets import ToyShapesDataset, make_toy_dataset

    args = tool.parse_args([])
    assert (args.root, args.num_train, args.num_val, args.size, args.seed) == ('data/toy', 2000, 200, 256, 0)
    defaults = {name: p.default for name, p in inspect.signature(make_toy_dataset).parameters.items()}
    assert defaults == dict(root=inspect.Parameter.empty, num_train=2000, num_val=200, size=256, seed=0)
    defaults = {name: p.default for name, p in inspect.signature(ToyShapesDataset.__init__).parameters.items()}
    assert (defaults['num_train'], defaults['num_val'], defaults['image_size'], defaults['seed']) == (2000, 200, 256, 0)
    cfg = Config.fromfile(TOY)
    for split in ('train', 'val', 'test'):
        dataset = cfg[f'{split}_dataloader'].dataset
        assert dataset.type == 'ToyShapesDataset' and dataset.data_root == 'data/toy/'
        assert not {'num_train', 'num_val', 'image_size', 'seed'} & set(dataset), dataset  # the defaults apply
    assert os.path.normpath(args.root) == os.path.normpath(cfg.train_dataloader.dataset.data_root)
