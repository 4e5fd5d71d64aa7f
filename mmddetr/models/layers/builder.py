"""Building the sub-layers of transformer layers from config dicts."""
import copy
from typing import Optional, Union

from mmengine.model import ModuleList
from torch import nn

from mmddetr.registry import MODELS


def cfg_with_default_type(cfg: Optional[dict], default_type: Union[str, type], **defaults) -> dict:
    """A copy of ``cfg`` with ``type`` and the ``defaults`` filled in where it omits them."""
    cfg = copy.deepcopy(dict(cfg or {}))
    cfg.setdefault('type', default_type)
    for key, value in defaults.items():
        cfg.setdefault(key, value)
    return cfg


def build_from_cfg_or_default(cfg: Optional[dict], default_type: Union[str, type], **defaults) -> nn.Module:
    """Build ``cfg`` through ``MODELS``, with ``type`` (a registered name or a class) and the ``defaults`` filled in
    where the config omits them.

    mmdet's layer configs carry no ``type`` (its layers hard-code their attention and FFN classes); ours fill the
    same classes in, so mmdet's configs work unchanged and a ``type`` swaps the layer.
    """
    return MODELS.build(cfg_with_default_type(cfg, default_type, **defaults))


def build_layers(num_layers: int, layer_cfg: dict, default_type: Union[str, type]) -> ModuleList:
    """``num_layers`` (at least 1) layers, each built from ``layer_cfg`` (``type`` defaults to ``default_type``)."""
    if num_layers < 1:
        raise ValueError(f'num_layers must be at least 1, but got {num_layers}')
    return ModuleList([build_from_cfg_or_default(layer_cfg, default_type) for _ in range(num_layers)])
