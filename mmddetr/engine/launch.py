"""Preparing a config for ``tools/train.py`` / ``tools/test.py``: ``--cfg-options`` and data checks, CPU distributed
runs, AMP, config errors that say where they are, and the one place where the tools turn errors into one line."""
import ast
import atexit
import contextlib
import difflib
import importlib
import importlib.util
import inspect
import logging
import os
import os.path as osp
import re
import sys
from typing import Any, Iterator, List, Optional, Set, Tuple

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import DATASETS, Registry
from mmengine.runner import Runner

from .checkpoint_check import CheckpointError


class ConfigError(ValueError):
    """A config key or ``--cfg-options`` entry that cannot work; the message names the key and what was expected."""


# Top-level keys that mmengine's Runner (or our build_runner, or Config itself) reads; every other top-level key of a
# config file is a variable, whose value the file has already put into the keys that use it.
RUNNER_KEYS = frozenset(inspect.signature(Runner.__init__).parameters) - {'self', 'cfg'} | {
    'model_wrapper_cfg', 'find_unused_parameters', 'sync_bn', 'activation_checkpointing', 'efficient_conv_bn_eval',
    'compile', 'custom_imports', 'runner_type'}


def load_config(config: str, cfg_options: Optional[dict] = None, work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    """A config as mmdet's tools load it: ``--cfg-options`` checked (:func:`check_cfg_options`) and merged, work dir
    from the command line, the config or ``work_dirs/<config name>``, and the launcher set up (see
    :func:`setup_launcher`). A Python syntax error in the file or its ``_base_`` files is a :class:`ConfigError`."""
    try:
        cfg = Config.fromfile(config)
    except SyntaxError as e:  # mmengine's message gives the line but not the file
        with open(config, encoding='utf-8') as f:
            where = f'config {config}' if _has_syntax_error(f.read()) else f'a _base_ file of config {config}'
        raise ConfigError(f'{where}: {e}') from e
    if cfg_options:
        check_cfg_options(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join('work_dirs', osp.splitext(osp.basename(config))[0])
    setup_launcher(cfg, launcher)
    return cfg


def _has_syntax_error(source: str) -> bool:
    try:
        ast.parse(source)
    except SyntaxError:
        return True
    return False


def check_cfg_options(cfg: Config, options: dict) -> None:
    """Refuse ``--cfg-options`` entries that cannot do what they say, before anything is built or written.

    - a path through a value that is not a dict or list, or past the end of a list;
    - a string where the config has a number or bool, or a number or bool where it has a string (``DictAction``
      reads a value as a number, bool or None whenever it can: ``batch_size=two`` is the string 'two');
    - a new top-level key that nothing reads and whose name is close to a key that is read (a typo: mmengine would
      ignore it);
    - a top-level variable of the config file (``data_root``, ``train_pipeline``): the file has already put its value
      into the keys that use it, so setting it changes nothing; the message names those keys.

    New keys inside a dict are left to the class they are passed to (see :func:`config_errors_explained`).

    Raises:
        ConfigError: naming the option's key and what was expected.
    """
    for key, value in options.items():
        parts = key.split('.')
        if parts[0] not in cfg:
            _check_new_top_level_key(cfg, key, parts[0])
            continue
        if parts[0] not in RUNNER_KEYS:
            _check_not_a_variable(cfg, key, parts[0])
        node = cfg[parts[0]]
        for depth, part in enumerate(parts[1:], 1):
            where = '.'.join(parts[:depth])
            if isinstance(node, (list, tuple)):
                if not (part.isdigit() and int(part) < len(node)):
                    raise ConfigError(f'{key}: {where} is a list of {len(node)}; expected an index from 0 to '
                                      f'{len(node) - 1} after it, got {part!r}')
                node = node[int(part)]
            elif not isinstance(node, dict):
                raise ConfigError(f'{key}: {where} is {node!r}, not a dict or list whose {part!r} could be set')
            elif part in node:
                node = node[part]
            else:
                break  # a new key
        else:
            _check_value(key, node, value)


def _check_value(key: str, old: Any, new: Any) -> None:
    number = (int, float)  # bool is an int
    if isinstance(old, number) and isinstance(new, str):
        expected = 'True or False' if isinstance(old, bool) else 'a number'
    elif isinstance(old, str) and isinstance(new, number):
        expected = 'a string'
    else:
        return
    raise ConfigError(f'{key}={new}: expected {expected} (the config has {old!r}), got {new!r}')


def _check_new_top_level_key(cfg: Config, key: str, name: str) -> None:
    if name in RUNNER_KEYS:
        return
    close = difflib.get_close_matches(name, RUNNER_KEYS | set(cfg.keys()), cutoff=0.8)
    if close:
        raise ConfigError(f'{key}: the config has no key {name!r} and nothing reads it (it would be ignored); did you '
                          f'mean {" or ".join(close)}?')


def _check_not_a_variable(cfg: Config, key: str, name: str) -> None:
    value = cfg[name]
    if value is None or value == '':
        return

    def holds(used: Any) -> bool:  # the value, or (a string) a path that starts with it: data_root + 'annotations/'
        return used == value or isinstance(value, str) and isinstance(used, str) and used.startswith(value)

    users = [re.sub(r'\[(\d+)\]', r'.\1', path) + key[len(name):] for path, used in _values(cfg.to_dict())
             if re.match(r'\w+', path).group() in RUNNER_KEYS and holds(used)]
    if users:
        more = f' and {len(users) - 4} more' if len(users) > 4 else ''
        raise ConfigError(f'{key}: {name!r} is a variable of the config file, whose value the file has already put '
                          f'into the keys that use it, so setting it changes nothing; set the keys that hold its value '
                          f'instead: {", ".join(users[:4])}{more}')


def _values(node: Any, path: str = '') -> Iterator[Tuple[str, Any]]:
    """(key path, value) of every value in a config (``model.backbone.depth``, ``custom_hooks[0].type``), dicts and
    lists included."""
    if path:
        yield path, node
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _values(child, f'{path}.{key}' if path else key)
    elif isinstance(node, (list, tuple)):
        for index, child in enumerate(node):
            yield from _values(child, f'{path}[{index}]')


def build_runner(cfg: Config):
    """mmengine's Runner, or the one ``runner_type`` names."""
    from mmddetr.registry import RUNNERS
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


class UnknownTypeError(KeyError):
    """A config ``type`` that no registry searched holds; the message names the config keys, the registries
    searched and the closest registered names."""

    def __str__(self) -> str:
        return self.args[0]


_NOT_REGISTERED = re.compile(r'(\S+) is not in the (\w+)::(\w+) registry')


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
    keys = [f'{path}.type' for path, node in _values(cfg.to_dict()) if isinstance(node, dict)
            and node.get('type') == type_name]
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


_UNEXPECTED_ARGUMENT = re.compile(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'")


def explain_unknown_argument(cfg: Config, error: TypeError) -> Optional[str]:
    """For a constructor's "X.__init__() got an unexpected keyword argument 'name'": the config keys holding
    ``name``, the class and the closest of its arguments (those of every ``__init__`` along its MRO) and of the keys
    beside it. None for other errors, or when no config key holds ``name``."""
    match = _UNEXPECTED_ARGUMENT.search(str(error))
    if match is None:
        return None
    class_name, name = match.groups()
    holders = [(path, node) for path, node in _values(cfg.to_dict()) if isinstance(node, dict) and name in node]
    if not holders:
        return None
    cls, arguments = _init_arguments(error, class_name)
    valid = (arguments | {key for _, node in holders for key in node}) - {name, 'type'}
    close = difflib.get_close_matches(name, valid)
    hint = f'did you mean {" or ".join(close)}?' if close else f'valid keys: {", ".join(sorted(valid))}'
    keys = ', '.join(f'{path}.{name}' for path, _ in holders)
    return f'{keys}: {cls} takes no argument {name!r}; {hint}'


def _init_arguments(error: TypeError, class_name: str) -> Tuple[str, Set[str]]:
    """The name of the class being built and the named arguments of each ``__init__`` along its MRO. The class
    named ``class_name`` (or a subclass, whose ``__init__`` passed the argument on) is in the frame that called the
    constructor, the innermost of the traceback: a local (mmengine's ``obj_cls``, a subclass's ``self``) or a
    global (an imported class)."""
    traceback = error.__traceback__
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    frame = traceback.tb_frame
    for value in (*frame.f_locals.values(), *frame.f_globals.values()):
        cls = value if isinstance(value, type) else type(value)
        if any(base.__name__ == class_name for base in cls.__mro__):
            return cls.__name__, {name for base in cls.__mro__ for name in _named_parameters(base.__init__)}
    return class_name, set()


def _named_parameters(function) -> List[str]:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        return []
    return [p.name for p in parameters if p.name != 'self' and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


@contextlib.contextmanager
def config_errors_explained(cfg: Config) -> Iterator[None]:
    """Turn mmengine's "not in the registry" ``KeyError`` for a type set in ``cfg`` into an
    :class:`UnknownTypeError`, and a constructor's "unexpected keyword argument" ``TypeError`` for a key set in
    ``cfg`` into a :class:`ConfigError`, both naming the config key and the closest valid names (see
    :func:`explain_unknown_type`, :func:`explain_unknown_argument`)."""
    try:
        yield
    except KeyError as error:
        message = explain_unknown_type(cfg, error)
        if message is None:
            raise
        raise UnknownTypeError(message) from error
    except TypeError as error:
        message = explain_unknown_argument(cfg, error)
        if message is None:
            raise
        raise ConfigError(message) from error


@contextlib.contextmanager
def errors_in_one_line() -> Iterator[None]:
    """For the command lines: errors whose message says what is wrong and what was expected (config, data,
    checkpoint and missing or existing file errors) end the process with ``error: <message>`` on stderr and exit
    code 1, without a traceback; any other error keeps its traceback."""
    from mmddetr.datasets import DatasetError
    try:
        yield
    except (ConfigError, UnknownTypeError, DatasetError, CheckpointError, FileNotFoundError, FileExistsError) as e:
        sys.exit(f'error: {e}')


def _datasets(cfg: Config, loaders: Tuple[str, ...]) -> Iterator[Tuple[str, dict]]:
    """(key, dataset config) of each loader's dataset, inside wrappers (RepeatDataset, ...)."""
    for loader in loaders:
        key, dataset = f'{loader}.dataset', (cfg.get(loader) or {}).get('dataset')
        while dataset is not None and 'dataset' in dataset:
            key, dataset = f'{key}.dataset', dataset['dataset']
        if dataset is not None:
            yield key, dataset


def _makes_own_data(cfg: Config, dataset: dict) -> bool:
    """Whether the dataset class declares ``makes_own_data = True`` (it writes its files under ``data_root`` when
    built). Types the registries do not hold are left to the runner's error."""
    dataset_type = dataset.get('type')
    if isinstance(dataset_type, str):
        with DATASETS.switch_scope_and_registry(cfg.get('default_scope')) as registry:
            dataset_type = registry.get(dataset_type)
    return bool(getattr(dataset_type, 'makes_own_data', False))


def check_data_exists(cfg: Config, loaders: Tuple[str, ...], hint: str = '') -> None:
    """Stop with where the data must be when an annotation file of a dataset or of its evaluator is missing
    (datasets that make their own data excepted).

    Args:
        cfg (Config): The config.
        loaders (tuple[str]): The data loader keys to check (``'train_dataloader'``, ...); ``'val_dataloader'`` and
            ``'test_dataloader'`` with their evaluators.
        hint (str): Appended to the message, e.g. a config that needs no data.

    Raises:
        FileNotFoundError: naming the config key and the missing file.
    """
    made = set()  # annotation files that datasets will make
    for key, dataset in _datasets(cfg, loaders):
        if not dataset.get('ann_file'):
            continue
        ann_file = osp.join(dataset.get('data_root') or '', dataset['ann_file'])
        if _makes_own_data(cfg, dataset):
            made.add(osp.normpath(ann_file))
        elif not osp.isfile(ann_file):
            root = dataset.get('data_root') or osp.dirname(ann_file)
            raise FileNotFoundError(
                f'{key}.ann_file: {ann_file} not found. Put the dataset under {root} (COCO 2017: '
                f'{root}annotations/instances_{{train,val}}2017.json, {root}train2017/, {root}val2017/; a symlink '
                f'works), or set {key}.data_root with --cfg-options.{" " + hint if hint else ""}')
    for loader in loaders:
        key = loader.replace('_dataloader', '_evaluator')  # no train_evaluator
        evaluators = cfg.get(key) or {}
        named = [(f'{key}.{i}', e) for i, e in enumerate(evaluators)] if isinstance(evaluators, list) else [
            (key, evaluators)]
        for evaluator_key, evaluator in named:
            ann_file = evaluator.get('ann_file')
            if ann_file and osp.normpath(ann_file) not in made and not osp.isfile(ann_file):
                raise FileNotFoundError(f'{evaluator_key}.ann_file: {ann_file} not found; expected the annotation file '
                                        f'of {loader}.dataset: set it with --cfg-options')


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
