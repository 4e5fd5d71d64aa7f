"""Building the sub-layers of transformer layers from config dicts."""
import copy
from typing import Optional

from torch import nn

from mmddetr.registry import MODELS


def build_from_cfg_or_default(cfg: Optional[dict], default_type: str, **defaults) -> nn.Module:
    """Build ``cfg`` through ``MODELS``, with ``type`` and the ``defaults`` filled in where the config omits them.

    mmdet's layer configs carry no ``type`` (its layers hard-code their attention and FFN classes); ours fill the
    same classes in, so mmdet's configs work unchanged and a ``type`` swaps the layer.
    """
    cfg = copy.deepcopy(dict(cfg or {}))
    cfg.setdefault('type', default_type)
    for key, value in defaults.items():
        cfg.setdefault(key, value)
    return MODELS.build(cfg)
