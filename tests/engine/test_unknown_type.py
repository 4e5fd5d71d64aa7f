"""A misspelt config ``type`` names the config key, the registries searched and the closest names."""
import pytest
from mmengine.config import Config

from mmddetr.engine import UnknownTypeError, config_errors_explained
from mmddetr.registry import HOOKS, MODELS


def _build(cfg, registry, key):
    with config_errors_explained(cfg):
        registry.build(cfg[key])


def test_misspelt_model_type_names_key_registries_and_close_names():
    cfg = Config(dict(model=dict(type='DeformableDETRR')))
    with pytest.raises(UnknownTypeError) as error:
        _build(cfg, MODELS, 'model')
    message = str(error.value)
    assert message.startswith("model.type: unknown type 'DeformableDETRR'; searched the registries mmddetr::model, "
                              'mmdet::model, mmengine::model (')
    assert 'did you mean DeformableDETR or' in message


def test_key_paths_inside_lists_and_names_with_another_scope():
    cfg = Config(dict(custom_hooks=[dict(type='RNGStateHook'), dict(type='mmdet.RNGStateHok')]))
    with pytest.raises(UnknownTypeError, match=r"^custom_hooks\[1\].type: unknown type 'mmdet.RNGStateHok'; searched "
                                               r'the registries mmdet::hook, mmengine::hook \(\d+ names\)'):
        with config_errors_explained(cfg):
            for hook in cfg.custom_hooks:
                HOOKS.build(hook)


def test_unloaded_scope_asks_for_custom_imports():
    cfg = Config(dict(model=dict(type='mmnothere.Net')))
    expected = r"model.type: unknown type 'mmnothere.Net': no registry of scope 'mmnothere' is loaded; add " \
               r"custom_imports=dict\(imports=\['mmnothere'\]\)"
    with pytest.raises(UnknownTypeError, match=expected):
        _build(cfg, MODELS, 'model')


def test_other_key_errors_pass_unchanged():
    cfg = Config(dict(model=dict(type='DeformableDETR')))
    with pytest.raises(KeyError) as error, config_errors_explained(cfg):
        MODELS.build(dict(type='NotInTheConfig'))  # a type that code, not the config, asked for
    assert type(error.value) is KeyError and 'NotInTheConfig is not in the mmddetr::model registry' in str(error.value)
    with pytest.raises(KeyError) as error, config_errors_explained(cfg):
        {}['missing']
    assert type(error.value) is KeyError
