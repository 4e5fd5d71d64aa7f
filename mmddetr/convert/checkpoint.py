"""A converted checkpoint written with the config that builds its detector, and a detector read back for conversion.

The config inherits a shipped one and sets what the checkpoint needs (conv biases of the input projections, layers,
queries, number of classes and, for classes other than COCO's, their names), so that ``tools/test.py``,
``tools/infer.py`` and ``tools/train.py`` take the pair as they are.
"""
import os
import os.path as osp
from typing import Dict, Sequence, Tuple

import torch
from mmdet.datasets import CocoDataset
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import nn

from mmddetr.engine import load_detector, read_checkpoint


class ConversionError(ValueError):
    """A converted checkpoint that does not fit its config, or an output path that exists."""


def config_path_of(checkpoint: str) -> str:
    """The config written beside a converted checkpoint: ``OUT.pth`` → ``OUT.py``."""
    return osp.splitext(checkpoint)[0] + '.py'


def _nested(settings: Dict[str, object]) -> dict:
    nested: dict = {}
    for key, value in settings.items():
        *parents, name = key.split('.')
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[name] = value
    return nested


def _python(value, indent: str = '') -> str:
    """``value`` as Python source, dicts as ``dict(...)``; with ``indent``, one key per line."""
    if not isinstance(value, dict):
        return repr(value)
    if indent:
        return 'dict(\n' + ',\n'.join(f'{indent}{key}={_python(item)}' for key, item in value.items()) + ')'
    return 'dict(' + ', '.join(f'{key}={_python(item)}' for key, item in value.items()) + ')'


def _base_value(cfg: dict, key: str):
    node = cfg
    for part in key.split('.'):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def coco_classes(classes: Sequence[str]) -> bool:
    """Whether ``classes`` are mmdet's ``CocoDataset`` classes, in order."""
    return tuple(classes) == CocoDataset.METAINFO['classes']


def derived_config(base_config: str, config_path: str, settings: Dict[str, object], classes: Sequence[str],
                   source: str) -> str:
    """The text of a config at ``config_path`` that inherits ``base_config`` (by a path relative to it) and sets the
    ``settings`` (dotted keys) that differ from it, and the dataset classes when they are not COCO's."""
    base = Config.fromfile(base_config).to_dict()
    changed = {key: value for key, value in settings.items() if _base_value(base, key) != value}
    base_config, here = osp.abspath(base_config), osp.dirname(osp.abspath(config_path))
    inside = osp.commonpath([base_config, here]) != osp.sep  # relative within one tree, else absolute
    lines = [f'# Written by tools/convert_checkpoint.py for {source}: {osp.basename(base_config)} with the settings of '
             'the converted checkpoint.',
             f'_base_ = {(osp.relpath(base_config, here) if inside else base_config)!r}']
    lines += [f'{name} = {_python(value, indent="    ")}' for name, value in _nested(changed).items()]
    if not coco_classes(classes):
        lines += ['# its classes, not COCO\'s: point the datasets at data with these category names',
                  f'metainfo = dict(classes={tuple(classes)!r}, palette=\'random\')']
        lines += [f'{loader} = dict(dataset=dict(metainfo=metainfo))'
                  for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    return '\n'.join(lines) + '\n'


def check_fits(state_dict: Dict[str, torch.Tensor], config_path: str, shown: int = 3) -> None:
    """Raises ``ConversionError`` unless ``state_dict`` loads strictly into the detector ``config_path`` builds: how
    many weights are missing, unexpected or of another shape, and the first ``shown`` of each."""
    from mmddetr.registry import MODELS
    cfg = Config.fromfile(config_path)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmddetr')):
        expected = MODELS.build(cfg.model).state_dict()
    mismatches = {
        'missing': [key for key in expected if key not in state_dict],
        'unexpected': [key for key in state_dict if key not in expected],
        'of another shape': [f'{key} {tuple(state_dict[key].shape)} for {tuple(value.shape)}'
                             for key, value in expected.items()
                             if key in state_dict and state_dict[key].shape != value.shape]}
    problems = [f'{len(keys)} weights {what} (first: {", ".join(keys[:shown])})'
                for what, keys in mismatches.items() if keys]
    if problems:
        raise ConversionError(f'the converted checkpoint does not fit {config_path}: {"; ".join(problems)}')


def save_converted(state_dict: Dict[str, torch.Tensor], meta: dict, checkpoint: str, base_config: str,
                   settings: Dict[str, object], classes: Sequence[str]) -> str:
    """Write the converted ``checkpoint`` and its config (:func:`config_path_of`), checked to load strictly.

    Args:
        state_dict (dict): mmddetr / mmdet names.
        meta (dict): Saved as the checkpoint's meta, with ``dataset_meta`` (the classes) added.
        checkpoint (str): New ``.pth`` path.
        base_config (str): The shipped config of the checkpoint's variant.
        settings (dict): Config values (dotted keys) the checkpoint needs.
        classes (Sequence[str]): Class names, in class order.

    Returns:
        str: The config's path.

    Raises:
        ConversionError: an output path exists, or the checkpoint does not fit the config (nothing is written).
    """
    config_path = config_path_of(checkpoint)
    if not checkpoint.endswith('.pth'):
        raise ConversionError(f'{checkpoint}: expected a .pth path (its config is written beside it as .py)')
    for path in (checkpoint, config_path):
        if osp.exists(path):
            raise ConversionError(f'{path} exists; choose a new path (nothing is overwritten)')
    classes = tuple(classes)
    text = derived_config(base_config, config_path, settings, classes, osp.basename(checkpoint))
    os.makedirs(osp.dirname(osp.abspath(checkpoint)), exist_ok=True)
    with open(config_path, 'x') as f:
        f.write(text)
    part = checkpoint + '.part'
    try:
        check_fits(state_dict, config_path)
        torch.save(dict(state_dict=state_dict, meta=dict(meta, dataset_meta=dict(classes=classes))), part)
        os.replace(part, checkpoint)
    except BaseException:
        for path in (config_path, part):
            if osp.exists(path):
                os.remove(path)
        raise
    return config_path


def read_detector(config: str, checkpoint: str) -> Tuple[nn.Module, dict]:
    """The detector of ``config`` with the weights of ``checkpoint`` (checked: :func:`mmddetr.engine.load_detector`)
    and the checkpoint's meta."""
    model = load_detector(config, checkpoint)
    return model, read_checkpoint(checkpoint).get('meta') or {}
