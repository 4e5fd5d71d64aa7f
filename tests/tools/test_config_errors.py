"""Config and data mistakes a new user makes stop tools/train.py and tools/test.py with one line naming the key or
file and what was expected (exit code 1, no traceback, no checkpoint): misspelt types and arguments, ``--cfg-options``
that cannot work, and a COCO-format dataset of one's own with a broken annotation file or missing images."""
import importlib.util
import json
import os
import os.path as osp
import shutil
import sys

import pytest

from tool_runs import TOY
from mmddetr.engine import ConfigError, config_errors_explained, errors_in_one_line, load_config

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', '..', 'tools'))
import train  # noqa: E402

CLASSES = '[circle,square,triangle,ring,cross]'


@pytest.mark.parametrize('tool, args, option, expected', [
    ('train.py', [], 'model.backbone.type=ResNett',
     "error: model.backbone.type: unknown type 'ResNett'; searched the registries mmddetr::model, mmdet::model, "
     'mmengine::model'),
    ('test.py', [__file__], 'test_dataloader.dataset.type=ToyShapesDatasett',  # built lazily, in runner.test()
     "error: test_dataloader.dataset.type: unknown type 'ToyShapesDatasett'; searched the registries "
     'mmddetr::dataset, mmdet::dataset, mmengine::dataset'),
], ids=['train', 'test'])
def test_misspelt_type_stops_with_key_registries_and_close_names(run_tool, toy_options, tmp_path, tool, args, option,
                                                                expected):
    proc = run_tool(tool, TOY, *args, '--work-dir', str(tmp_path), '--cfg-options', *toy_options, option)
    assert proc.returncode == 1
    assert expected in proc.stderr and 'did you mean ' + option.split('=')[1][:-1] in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_syntax_error_in_a_config_or_its_base_is_named_in_one_line(tmp_path):
    base = tmp_path / 'base.py'
    base.write_text('model = dict(type="DeformableDETR"\n')
    mine = tmp_path / 'mine.py'
    mine.write_text(f'_base_ = [{str(base)!r}]\n')
    runs = ((train.main, base, f'config {base}'), (train.main, mine, f'a _base_ file of config {mine}'),
            (lambda args: _test_tool().main(args + ['any.pth']), mine, f'a _base_ file of config {mine}'))
    for main, config, where in runs:
        with pytest.raises(SystemExit) as exit_:
            main([str(config), '--work-dir', str(tmp_path / 'work')])
        message = exit_.value.code
        assert message == f"error: {where}: '(' was never closed (<unknown>, line 1)", message
        assert len(message.splitlines()) == 1 and not (tmp_path / 'work').exists()


def test_misspelt_metric_built_when_training_starts_is_named(toy_options, tmp_path):
    # the validation loop, and its metric, are built by runner.train(), after the model and the data
    with pytest.raises(SystemExit) as exit_:
        train.main([TOY, '--work-dir', str(tmp_path), '--cfg-options', *toy_options, 'val_evaluator.type=CocoMetricc'])
    assert exit_.value.code.startswith(
        "error: val_evaluator.type: unknown type 'CocoMetricc'; searched the registries mmddetr::metric, "
        'mmdet::metric, mmengine::metric'), exit_.value.code
    assert 'did you mean CocoMetric' in exit_.value.code and _checkpoints(tmp_path) == []


@pytest.mark.parametrize('option, value, message', [
    ('train_dataloader.batch_size', 'two', "train_dataloader.batch_size=two: expected a number (the config has 4), "
                                           "got 'two'"),
    ('train_dataloader.persistent_workers', 'no', 'train_dataloader.persistent_workers=no: expected True or False '
                                                  "(the config has True), got 'no'"),
    ('train_dataloader.dataset.data_root', 2024, "train_dataloader.dataset.data_root=2024: expected a string (the "
                                                 "config has 'data/toy/'), got 2024"),
    ('train_dataloder.batch_size', 2, "train_dataloder.batch_size: the config has no key 'train_dataloder' and "
                                      'nothing reads it (it would be ignored); did you mean train_dataloader?'),
    ('data_root', '/data/mine/', "data_root: 'data_root' is a variable of the config file, whose value the file has "
                                 'already put into the keys that use it, so setting it changes nothing; set the keys '
                                 'that hold its value instead: train_dataloader.dataset.data_root, '
                                 'val_dataloader.dataset.data_root, test_dataloader.dataset.data_root, '
                                 'val_evaluator.ann_file and 1 more'),
    ('train_pipeline.2.scale', [128, 128], "train_pipeline.2.scale: 'train_pipeline' is a variable of the config "
                                           'file, whose value the file has already put into the keys that use it, so '
                                           'setting it changes nothing; set the keys that hold its value instead: '
                                           'train_dataloader.dataset.pipeline.2.scale'),
    ('model.bbox_head.num_classes.x', 3, 'model.bbox_head.num_classes.x: model.bbox_head.num_classes is 5, not a '
                                         "dict or list whose 'x' could be set"),
    ('train_dataloader.dataset.pipeline.9.prob', 1, 'train_dataloader.dataset.pipeline.9.prob: '
                                                    'train_dataloader.dataset.pipeline is a list of 5; expected an '
                                                    "index from 0 to 4 after it, got '9'"),
], ids=['number', 'bool', 'string', 'top-level-typo', 'variable', 'variable-list', 'not-a-dict', 'list-index'])
def test_cfg_options_that_cannot_work_are_named(option, value, message):
    with pytest.raises(ConfigError) as error:
        load_config(TOY, {option: value})
    assert str(error.value) == message


def test_cfg_options_that_work_pass():
    options = {'train_dataloader.batch_size': 2, 'optim_wrapper.optimizer.lr': 1,  # an int for a float
               'train_dataloader.dataset.pipeline.0.on_error': 'skip', 'randomness.seed': None, 'load_from': 'a.pth',
               'val_evaluator': None, 'model.backbone.init_cfg': None, 'my_option': 3,  # no key close to it
               'train_dataloader.dataset.metainfo.classes': ['circle'], 'custom_imports': dict(imports=[])}
    cfg = load_config(TOY, options)
    assert cfg.train_dataloader.batch_size == 2 and cfg.my_option == 3 and cfg.val_evaluator is None


@pytest.mark.parametrize('option, message', [
    ('model.bbox_head.num_clases',  # passed on by DeformableDETRHead to DETRHead, which rejects it
     "model.bbox_head.num_clases: DeformableDETRHead takes no argument 'num_clases'; did you mean num_classes?"),
    ('model.encoder.num_layres',  # built by the detector's code, not by a registry
     "model.encoder.num_layres: DeformableDetrTransformerEncoder takes no argument 'num_layres'; did you mean "
     'num_layers?'),
    ('model.backbone.zzz', "model.backbone.zzz: ResNet takes no argument 'zzz'; valid keys: avg_down, base_channels, "
                           'conv_cfg, dcn, deep_stem, depth, dilations, frozen_stages, in_channels, init_cfg, '
                           'norm_cfg, norm_eval, num_stages, out_indices, plugins, pretrained, stage_with_dcn, '
                           'stem_channels, strides, style, with_cp, zero_init_residual'),
], ids=['head', 'encoder', 'backbone'])
def test_unknown_argument_names_the_key_and_the_closest_arguments(option, message):
    from mmengine.registry import DefaultScope

    from mmddetr.registry import MODELS
    cfg = load_config(TOY, {option: 3, 'model.encoder.num_layers': 1, 'model.decoder.num_layers': 1})
    with pytest.raises(ConfigError) as error, config_errors_explained(cfg):
        with DefaultScope.overwrite_default_scope('mmddetr'):
            MODELS.build(cfg.model)
    assert str(error.value) == message


def test_other_errors_keep_their_traceback():
    with pytest.raises(RuntimeError, match='^a bug$'), errors_in_one_line():
        raise RuntimeError('a bug')


def test_other_type_errors_pass_unchanged():
    cfg = load_config(TOY)

    class Net:
        def __init__(self, depth):
            self.depth = depth

    with pytest.raises(TypeError, match=r"Net.__init__\(\) got an unexpected keyword argument 'deepth'") as error, \
            config_errors_explained(cfg):
        Net(deepth=3)  # no config key 'deepth': the argument came from code
    assert type(error.value) is TypeError
    with pytest.raises(TypeError) as error, config_errors_explained(cfg):
        len(3)
    assert type(error.value) is TypeError


@pytest.fixture
def my_coco(toy_root, tmp_path):
    """A COCO-format dataset of one's own (a copy of the toy data) and the options to train on it with CocoDataset."""
    root = str(tmp_path / 'mine') + '/'
    shutil.copytree(toy_root, root)
    options = [f'{split}_dataloader.dataset.{key}' for split in ('train', 'val', 'test') for key in (
        'type=CocoDataset', f'data_root={root}', f'metainfo.classes={CLASSES}')]
    return root, options + [f'{split}_evaluator.ann_file={root}annotations/instances_val.json' for split in (
        'val', 'test')]


def _checkpoints(folder):
    return [name for _, _, names in os.walk(folder) for name in names if name.endswith('.pth')]


def _append(path, text):
    with open(path, 'a') as f:
        f.write(text)


def _edit(path, change):
    with open(path) as f:
        content = json.load(f)
    change(content)
    with open(path, 'w') as f:
        json.dump(content, f)


def test_train_stops_with_one_line_on_what_a_new_user_gets_wrong(toy_options, my_coco, tmp_path):
    root, mine = my_coco
    train_json = f'{root}annotations/instances_train.json'
    first_image = f'{root}train/000001.png'
    with open(train_json) as f:
        annotations = len(json.load(f)['annotations'])
    cases = [  # (setup, options, message): one after the other, each undone by the next setup
        (None, ['model.bbox_head.num_clases=3'],
         "model.bbox_head.num_clases: DeformableDETRHead takes no argument 'num_clases'; did you mean num_classes?"),
        (None, ['train_dataloader.batch_szie=2'],  # built by the runner, once training starts
         "train_dataloader.batch_szie: DataLoader takes no argument 'batch_szie'; did you mean batch_size or "
         'batch_sampler?'),
        (None, ['train_cfg.max_iter=2'],
         "train_cfg.max_iter: IterBasedTrainLoop takes no argument 'max_iter'; did you mean max_iters or "
         'val_interval?'),
        (None, ['train_dataloader.batch_size=two'],
         "train_dataloader.batch_size=two: expected a number (the config has 4), got 'two'"),
        (None, ['train_dataloader.dataset.data_root='],
         "ToyShapesDataset: data_root is ''; expected the folder where the toy data is (or will be) made, e.g. "
         'data/toy/'),
        (lambda: os.remove(first_image), mine,
         f'{train_json}: 1 of its 16 images are not files at data_root + data_prefix.img + file_name: {first_image}; '
         "put them there, or set the dataset's on_missing_image='skip' to leave them out"),
        (lambda: (shutil.copy(f'{root}train/000002.png', first_image),
                  _edit(train_json, lambda c: c['annotations'][0].update(category_id=0))), mine,
         f"{train_json}: 1 of {annotations} annotations have category ids that are not among the file's categories: "
         '[0] (first: annotation id 1, image id 1)'),
        (lambda: _append(train_json, '}'), mine, f'{train_json}: not a JSON file: Extra data: line 1'),
        (lambda: os.remove(f'{root}annotations/instances_val.json'), mine + [
            'val_dataloader.dataset.ann_file=annotations/instances_train.json'],
         f'val_evaluator.ann_file: {root}annotations/instances_val.json not found; expected the annotation file of '
         'val_dataloader.dataset: set it with --cfg-options'),
    ]
    for index, (setup, options, message) in enumerate(cases):
        if setup is not None:
            setup()
        work_dir = str(tmp_path / f'work{index}')
        with pytest.raises(SystemExit) as exit_:
            train.main([TOY, '--work-dir', work_dir, '--cfg-options', *toy_options, 'train_cfg.max_iters=1', *options])
        assert exit_.value.code.startswith(f'error: {message}') and '\n' not in exit_.value.code, exit_.value.code
        assert _checkpoints(work_dir) == []
        assert osp.exists(work_dir) == (index not in (3, 8))  # --cfg-options and file checks come before the runner
    with pytest.raises(SystemExit) as exit_:
        train.main([f'{tmp_path}/my_config.py'])
    assert exit_.value.code == f"error: [Errno 2] No such file or directory: '{tmp_path}/my_config.py'"


def _test_tool():
    """tools/test.py as a module (its name would shadow pytest's test modules)."""
    spec = importlib.util.spec_from_file_location('test_tool', osp.join(osp.dirname(train.__file__), 'test.py'))
    test_tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_tool)
    return test_tool


def test_test_py_stops_with_one_line_on_a_broken_test_set(toy_options, my_coco, tmp_path):
    root, mine = my_coco
    test_tool = _test_tool()
    _append(f'{root}annotations/instances_val.json', ',')
    with pytest.raises(SystemExit) as exit_:  # the test set is built before the checkpoint is read
        test_tool.main([TOY, str(tmp_path / 'any.pth'), '--work-dir', str(tmp_path), '--cfg-options', *toy_options,
                        *mine])
    message = exit_.value.code
    assert message.startswith(f'error: {root}annotations/instances_val.json: not a JSON file: Extra data: line 1 '
                              'column ') and '\n' not in message, message


def test_missing_image_stops_train_py_with_one_line(run_tool, toy_options, my_coco, tmp_path):
    root, mine = my_coco
    os.remove(f'{root}train/000003.png')
    proc = run_tool('train.py', TOY, '--work-dir', str(tmp_path / 'work'), '--cfg-options', *toy_options, *mine)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: {root}annotations/instances_train.json: 1 of its 16 images are not files at data_root + '
        f"data_prefix.img + file_name: {root}train/000003.png; put them there, or set the dataset's "
        "on_missing_image='skip' to leave them out")
    assert _checkpoints(tmp_path / 'work') == []
