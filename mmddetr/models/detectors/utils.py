"""What our detectors share outside the transformer."""
from typing import Optional

from mmdet.models.data_preprocessors import DetDataPreprocessor
from torch import nn

from mmddetr.models.layers.builder import cfg_with_default_type


def data_preprocessor_cfg(cfg: Optional[dict]) -> Optional[dict]:
    """The data preprocessor config with ``type`` defaulting to mmdet's ``DetDataPreprocessor`` (None stays None:
    mmengine's plain ``BaseDataPreprocessor``), so that a config's fast switch can name another type."""
    return None if cfg is None else cfg_with_default_type(cfg, DetDataPreprocessor)


def check_positional_encoding(positional_encoding: nn.Module, embed_dims: int) -> None:
    """The sine encoding gives ``num_feats`` features per coordinate: ``2 * num_feats`` must be the embed dims."""
    if positional_encoding.num_feats * 2 != embed_dims:
        raise ValueError(f'positional_encoding.num_feats * 2 must equal the encoder embed_dims ({embed_dims}), '
                         f'got num_feats={positional_encoding.num_feats}')
