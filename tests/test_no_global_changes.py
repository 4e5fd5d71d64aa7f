"""DESIGN.md's contract: importing any mmddetr module changes nothing outside mmddetr (mmengine's and mmdet's
registries, mmengine's checkpoint loaders, the default registry scope, torch's safe globals, the attributes of
mmengine's, mmdet's and mmcv's modules); ``mmddetr.mmdet_ops``, the documented opt-in, changes exactly what its
docstring says.

A fresh process first imports every module of other packages that importing all of mmddetr loads (found in another
fresh process, and imported in the same order), so what those libraries' own imports do (mmdet's modules registering
in mmdet's registries) happens before the first snapshot; then it imports every mmddetr module
(``pkgutil.walk_packages``) and compares.

Counted as no change: our child registries (scope ``'mmddetr'``) appearing in ``_children`` of mmdet's registries,
exactly one per registry, under the key ``'mmddetr'``. That is how mmengine's scopes work: a registry searches its
children only for names prefixed ``'mmddetr.'`` (which make mmengine import ``mmddetr.registry`` itself), so no
unprefixed name of mmdet's or mmengine's configs resolves differently. Not checked: mmengine's file backends, where
``mmddetr.engine.checkpoint_io`` adds the name ``'atomic_local'`` (a new name that only configs naming it use).
"""
import json
import subprocess
import sys

SNAPSHOT = r'''
import importlib, inspect, json, pkgutil, sys
import mmdet.registry, mmengine.registry, torch
from mmengine.registry import DefaultScope, Registry
from mmengine.runner.checkpoint import CheckpointLoader

LIBRARIES = ('mmdet', 'mmengine', 'mmcv')


def registries():
    found = {}
    for module in (mmengine.registry, mmdet.registry):
        for name, value in vars(module).items():
            if isinstance(value, Registry):
                found[f'{module.__name__}.{name}'] = value
    return found


def describe(value):
    return f'{getattr(value, "__module__", "")}.{getattr(value, "__qualname__", type(value).__qualname__)}' \
        f'@{id(value)}'


def snapshot():
    state = {}
    for key, registry in registries().items():
        state[f'{key}._module_dict'] = {name: describe(v) for name, v in registry._module_dict.items()}
        state[f'{key}._locations'] = list(registry._locations)
        state[f'{key}._imported'] = registry._imported
        state[f'{key}._children'] = {scope: id(child) for scope, child in registry._children.items()
                                     if scope != 'mmddetr'}
    state['CheckpointLoader._schemes'] = [[prefix, describe(loader)] for prefix, loader in
                                          CheckpointLoader._schemes.items()]
    current = DefaultScope.get_current_instance()
    state['DefaultScope'] = [list(DefaultScope._instance_dict), current and current.scope_name]
    state['safe_globals'] = sorted(map(repr, torch.serialization.get_safe_globals()))
    for name, module in list(sys.modules.items()):
        if name.split('.')[0] in LIBRARIES and inspect.ismodule(module):
            state[f'module {name}'] = {attr: describe(value) for attr, value in vars(module).items()
                                       if attr != '__warningregistry__'}
    return state


def our_modules():
    import mmddetr
    return [m.name for m in pkgutil.walk_packages(mmddetr.__path__, 'mmddetr.') if m.name != 'mmddetr.mmdet_ops']
'''

FIND_THEIR_MODULES = SNAPSHOT + r'''
before = set(sys.modules)
for name in our_modules():
    importlib.import_module(name)
print(json.dumps([name for name in sys.modules if name not in before and name.split('.')[0] != 'mmddetr']))
'''

COMPARE = SNAPSHOT + r'''
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except Exception:  # aliases and extension submodules that cannot be imported by name; their parents are
        pass
before = snapshot()
names = our_modules()
for name in names:
    importlib.import_module(name)
after = snapshot()
children = {key: {scope: (child.scope, child.parent is registry) for scope, child in registry._children.items()
                  if scope == 'mmddetr'} for key, registry in registries().items() if registry.scope == 'mmdet'}
import mmddetr.mmdet_ops
opted_in = snapshot()
print(json.dumps(dict(names=names, before=before, after=after, opted_in=opted_in, children=children)))
'''


def _changes(before: dict, after: dict) -> dict:
    """What differs between two snapshots: for a dict entry, the keys added, removed or bound to another object."""
    changes = {}
    for key in before.keys() | after.keys():
        old, new = before.get(key), after.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            diff = {k: (old.get(k), new.get(k)) for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
            if diff:
                changes[key] = diff
        elif old != new:
            changes[key] = (old, new)
    return changes


def _run(code: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, '-c', code, *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.splitlines()[-1]


def test_importing_any_mmddetr_module_changes_nothing_outside_it_and_mmdet_ops_only_its_switch():
    result = json.loads(_run(COMPARE, _run(FIND_THEIR_MODULES)))
    assert {'mmddetr.engine', 'mmddetr.registry', 'mmddetr.models', 'mmddetr.export.onnx'} <= set(result['names'])
    assert any(key.startswith('module mmdet.models') for key in result['before'])  # the libraries are looked at
    assert len(result['before']['mmdet.registry.MODELS._module_dict']) > 100  # mmdet's own modules registered
    assert _changes(result['before'], result['after']) == {}
    assert len(result['children']) == 20
    assert all(entry == {'mmddetr': ['mmddetr', True]} for entry in result['children'].values()), result['children']

    from mmddetr.models.mmdet_attention import MMDET_MODULES
    switched = _changes(result['after'], result['opted_in'])
    assert set(switched) == {f'module {name}' for name in MMDET_MODULES}
    for name in MMDET_MODULES:
        (attr, (old, new)), = switched[f'module {name}'].items()
        assert attr == 'MultiScaleDeformableAttention'
        assert old.startswith('mmcv.ops.') and new.startswith('mmddetr.models.layers.'), (old, new)
