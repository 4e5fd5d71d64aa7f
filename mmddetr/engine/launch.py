"""Preparing a config for ``tools/train.py`` / ``tools/test.py``: data checks, CPU distributed runs, AMP, and
config errors that say where they are."""
import atexit
import contextlib
import difflib
import importlib
import importlib.util
import logging
import os
import os.path as osp
import re
from typing import Iterator, List, Optional, Tuple

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import DATASETS, Registry


def load_config(config: str, cfg_options: Optional[dict] = None, work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    """A config as mmdet's tools load it: ``--cfg-options`` merged, work dir from the command line, the config or
    ``work_dirs/<config name>``, and the launcher set up (see :func:`setup_launcher`)."""
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join('work_dirs', osp.splitext(osp.basename(config))[0])
    setup_launcher(cfg, launcher)
    return cfg


def build_runner(cfg: Config):
    """mmengine's Runner, or the one ``runner_type`` names."""
    from mmengine.runner import Runner

    from mmddetr.registry import RUNNERS
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


class UnknownTypeError(KeyError):
    """A config ``type`` that no registry searched holds; the message names the config keys, the registries
    searched and the closest registered names."""

    def __str__(self) -> str:
        return self.args[0]


_NOT_REGISTERED = re.compile(r'(\S+) is not in the (\w+)::(\w+) registry')


def _type_keys(node, name: str, path: str = '') -> Iterator[str]:
    """Config key paths (``model.backbone.type``, ``custom_hooks[0].type``) whose value is ``name``."""
    if isinstance(node, dict):
        if node.get('type') == name:
            yield f'{path}type'
        for key, child in node.items():
            yield from _type_keys(child, name, f'{path}{key}.')
    elif isinstance(node, (list, tuple)):
        for index, child in enumerate(node):
            yield from _type_keys(child, name, f'{path[:-1]}[{index}].')


def _searched_registries(scope: str, registry_name: str, type_name: str) -> Optional[List[Registry]]:
    """The registries mmengine's ``Registry.get`` searched for ``type_name`` from registry ``scope::name``: that
    registry and its parents, only itself for ``'<its scope>.Name'``, the other scope's for ``'<scope>.Name'``."""
    try:
        module = importlib.import_module(f'{scope}.registry')
    except ImportError:
        return None
    registry = next((r for r in vars(module).values() if isinstance(r, Registry) and r.name == registry_name), None)
    if registry is None:
        return None
    prefix, _ = Registry.split_scope_key(type_name)
    if prefix == registry.scope:
        return [registry]
    if prefix is not None:
        registry = registry._get_root_registry()._search_child(prefix)
    chain = []
    while registry is not None:
        chain.append(registry)
        registry = registry.parent
    return chain


def explain_unknown_type(cfg: Config, error: KeyError) -> Optional[str]:
    """For mmengine's "X is not in the mmddetr::model registry": the config keys holding ``X``, the registries
    searched (ours and its parents, mmdet's and mmengine's) and the closest registered names. None for other
    errors, or when no config key holds ``X`` (the type comes from code)."""
    match = _NOT_REGISTERED.search(str(error.args[0]) if error.args else '')
    if match is None:
        return None
    type_name, scope, registry_name = match.groups()
    keys = list(_type_keys(cfg.to_dict(), type_name))
    registries = _searched_registries(scope, registry_name, type_name) if keys else None
    if registries is None:
        return None
    where = f'{", ".join(keys)}: unknown type {type_name!r}'
    prefix, short_name = Registry.split_scope_key(type_name)
    if not registries:
        return f"{where}: no registry of scope {prefix!r} is loaded; add custom_imports=dict(imports=['{prefix}'])"
    names = {name.lower(): name for registry in registries for name in registry.module_dict}
    close = [names[n] for n in difflib.get_close_matches(short_name.lower(), names)]
    searched = ', '.join(f'{r.scope}::{r.name}' for r in registries)
    hint = f'did you mean {" or ".join(close)}?' if close else 'no registered name is close.'
    return (f'{where}; searched the registries {searched} ({len(names)} names); {hint} A type of another codebase '
            f"needs its scope prefix ('mmpretrain.Name') and custom_imports=dict(imports=['mmpretrain']).")


@contextlib.contextmanager
def unknown_types_explained(cfg: Config) -> Iterator[None]:
    """Turn mmengine's "not in the registry" ``KeyError`` for a type set in ``cfg`` into an
    :class:`UnknownTypeError` that names the config key (see :func:`explain_unknown_type`)."""
    try:
        yield
    except KeyError as error:
        message = explain_unknown_type(cfg, error)
        if message is None:
            raise
        raise UnknownTypeError(message) from error


def _datasets(cfg: Config, loaders: Tuple[str, ...]) -> Iterator[Tuple[str, dict]]:
    for loader in loaders:
        dataset = (cfg.get(loader) or {}).get('dataset')
        while dataset is not None and 'dataset' in dataset:  # wrappers (RepeatDataset, ...)
            dataset = dataset['dataset']
        if dataset is not None:
            yield loader, dataset


def _makes_own_data(cfg: Config, dataset: dict) -> bool:
    """Whether the dataset class declares ``makes_own_data = True`` (it writes its files under ``data_root`` when
    built). Types the registries do not hold are left to the runner's error."""
    dataset_type = dataset.get('type')
    if isinstance(dataset_type, str):
        with DATASETS.switch_scope_and_registry(cfg.get('default_scope')) as registry:
            dataset_type = registry.get(dataset_type)
    return bool(getattr(dataset_type, 'makes_own_data', False))


def check_data_exists(cfg: Config, loaders: Tuple[str, ...], hint: str = '') -> None:
    """Stop with where the data must be when an annotation file is missing (datasets that make their own data
    excepted).

    Args:
        cfg (Config): The config.
        loaders (tuple[str]): The data loader keys to check (``'train_dataloader'``, ...).
        hint (str): Appended to the message, e.g. a config that needs no data.

    Raises:
        FileNotFoundError: naming the config key and the missing file.
    """
    for loader, dataset in _datasets(cfg, loaders):
        if not dataset.get('ann_file'):
            continue
        ann_file = osp.join(dataset.get('data_root') or '', dataset['ann_file'])
        if not osp.isfile(ann_file) and not _makes_own_data(cfg, dataset):
            root = dataset.get('data_root') or osp.dirname(ann_file)
            raise FileNotFoundError(
                f'{loader}.dataset.ann_file: {ann_file} not found. Put the dataset under {root} (COCO 2017: '
                f'{root}annotations/instances_{{train,val}}2017.json, {root}train2017/, {root}val2017/; a symlink '
                f'works), or set data_root with --cfg-options.{" " + hint if hint else ""}')


def setup_launcher(cfg: Config, launcher: str) -> None:
    """Make ``--launcher pytorch|slurm|mpi`` work on CPU as well as GPU.

    On a machine without CUDA, mmengine would call ``torch.cuda.set_device`` while initialising the process group
    (failing on CPU-only torch) and give DDP ``device_ids=[local_rank]`` (rejected for CPU modules). Here the group
    is initialised with gloo first, and DDP gets ``device_ids=None``. With any launcher, the process group is
    destroyed when the process exits: one left to the interpreter's teardown aborts the process ("terminate called
    without an active exception") while gloo's worker threads still run.
    """
    cfg.launcher = launcher
    if launcher == 'none':
        return
    atexit.register(_destroy_process_group)
    if torch.cuda.is_available():
        return
    cfg.env_cfg.dist_cfg = dict(cfg.env_cfg.get('dist_cfg') or {}, backend='gloo')
    wrapper = dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                   find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper.update(cfg.get('model_wrapper_cfg') or {})
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    if launcher == 'pytorch' and not dist.is_initialized():
        dist.init_process_group('gloo', rank=int(os.environ['RANK']), world_size=int(os.environ['WORLD_SIZE']))


def _destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def configure_tensorboard(cfg: Config, add: bool = True) -> None:
    """TensorBoard logging (``<work_dir>/<time>/vis_data``): added to the visualizer's backends when tensorboard is
    installed (and ``add``); when it is not, any TensorBoard backend the config names (e.g. a config dumped by a
    training run on a machine that had it) is dropped with a warning, since mmengine would fail at its first write,
    mid-run."""
    if 'visualizer' not in cfg:
        return
    backends = cfg.visualizer.setdefault('vis_backends', [])
    is_tensorboard = ['Tensorboard' in str(b.get('type')) for b in backends]
    if importlib.util.find_spec('tensorboard') is None:
        if any(is_tensorboard):
            print_log('tensorboard is not installed: the config\'s TensorboardVisBackend is left out '
                      '(pip install tensorboard to log there)', logger='current', level=logging.WARNING)
            cfg.visualizer.vis_backends = [b for b, tb in zip(backends, is_tensorboard) if not tb]
    elif add and not any(is_tensorboard):
        backends.append(dict(type='TensorboardVisBackend'))


def setup_amp(cfg: Config) -> None:
    """Mixed precision: float16 autocast with dynamic loss scaling on CUDA (mmengine's ``AmpOptimWrapper``),
    bfloat16 autocast on CPU (our ``AutocastOptimWrapper``)."""
    if torch.cuda.is_available():
        cfg.optim_wrapper.update(type='AmpOptimWrapper', loss_scale='dynamic')
    else:
        cfg.optim_wrapper.update(type='AutocastOptimWrapper', device_type='cpu', dtype='bfloat16')
