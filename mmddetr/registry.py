"""Child registries (scope ``'mmddetr'``) of every mmdet registry.

Configs with ``default_scope='mmddetr'`` find our modules and, through the parents, every mmdet / mmengine one under
its unprefixed name (``ResNet``, ``CocoDataset``); other codebases reach ours as ``'mmddetr.<Name>'``.
"""
from mmdet import registry as mmdet_registry
from mmengine.registry import Registry

# The modules that register in each registry, imported at its first lookup.
_LOCATIONS = {
    'MODELS': ['mmddetr.models'],
    'TASK_UTILS': ['mmddetr.models'],
    'DATASETS': ['mmddetr.datasets'],
    'TRANSFORMS': ['mmddetr.datasets'],
    'HOOKS': ['mmddetr.engine'],
    'OPTIM_WRAPPERS': ['mmddetr.engine'],
}


def _child(name: str) -> Registry:
    """A child of mmdet's registry ``name``.

    mmengine only imports the locations of the registry it searches, not of its parents, so the child also lists
    mmdet's locations: the first lookup in scope ``'mmddetr'`` registers mmdet's modules as well as ours.
    """
    parent = getattr(mmdet_registry, name)
    locations = list(parent._locations) + _LOCATIONS.get(name, [])
    return Registry(parent.name, parent=parent, scope='mmddetr', locations=locations)


RUNNERS = _child('RUNNERS')
RUNNER_CONSTRUCTORS = _child('RUNNER_CONSTRUCTORS')
LOOPS = _child('LOOPS')
HOOKS = _child('HOOKS')
LOG_PROCESSORS = _child('LOG_PROCESSORS')
OPTIMIZERS = _child('OPTIMIZERS')
OPTIM_WRAPPERS = _child('OPTIM_WRAPPERS')
OPTIM_WRAPPER_CONSTRUCTORS = _child('OPTIM_WRAPPER_CONSTRUCTORS')
PARAM_SCHEDULERS = _child('PARAM_SCHEDULERS')
DATASETS = _child('DATASETS')
DATA_SAMPLERS = _child('DATA_SAMPLERS')
TRANSFORMS = _child('TRANSFORMS')
MODELS = _child('MODELS')
MODEL_WRAPPERS = _child('MODEL_WRAPPERS')
WEIGHT_INITIALIZERS = _child('WEIGHT_INITIALIZERS')
TASK_UTILS = _child('TASK_UTILS')
METRICS = _child('METRICS')
EVALUATOR = _child('EVALUATOR')
VISUALIZERS = _child('VISUALIZERS')
VISBACKENDS = _child('VISBACKENDS')
