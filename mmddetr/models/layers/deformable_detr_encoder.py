"""Deformable transformer encoder of Deformable DETR (arXiv 2010.04159, section 4.1)."""
from typing import Optional

from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import FFN
from mmengine.model import BaseModule, ModuleList
from torch import Tensor

from mmddetr.registry import MODELS
from .builder import build_from_cfg_or_default, build_layers
from .multi_scale_deform_attn import MultiScaleDeformableAttention
from .utils import pixel_centres


@MODELS.register_module()
class DeformableDetrTransformerEncoderLayer(BaseModule):
    """``x = LN(x + Attn(q=x + pos, v=x))``, then ``x = LN(x + FFN(x))``.

    The sub-layers a config gives no ``type`` are :attr:`self_attn_type` and :attr:`ffn_type` (the attention adds its
    residual, as mmcv's does); :class:`mmddetr.models.fast.FastDeformableDetrTransformerEncoderLayer` is this layer
    with faster ones.

    Args:
        self_attn_cfg (dict): Self-attention config; ``type`` defaults to :attr:`self_attn_type`, ``batch_first`` to
            True. Any attention with mmcv's ``MultiScaleDeformableAttention`` interface can be swapped in.
        ffn_cfg (dict): FFN config (mmcv's ``FFN`` arguments); ``type`` defaults to :attr:`ffn_type`.
        norm_cfg (dict): Normalisation after each sub-layer. Default: ``dict(type='LN')``.
        init_cfg (dict, optional): Initialisation config.
    """
    self_attn_type = MultiScaleDeformableAttention
    ffn_type = FFN

    def __init__(self,
                 self_attn_cfg: Optional[dict] = None,
                 ffn_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='LN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.self_attn = build_from_cfg_or_default(self_attn_cfg, self.self_attn_type, batch_first=True)
        if not self.self_attn.batch_first:
            raise ValueError('self_attn_cfg.batch_first must be True: the encoder layer is batch first')
        self.embed_dims = self.self_attn.embed_dims
        self.ffn = build_from_cfg_or_default(ffn_cfg, self.ffn_type, embed_dims=self.embed_dims)
        self.norms = ModuleList([build_norm_layer(norm_cfg, self.embed_dims)[1] for _ in range(2)])

    def forward(self, query: Tensor, query_pos: Tensor, key_padding_mask: Optional[Tensor], reference_points: Tensor,
                spatial_shapes: Tensor, level_start_index: Tensor, **kwargs) -> Tensor:
        """
        Args:
            query (Tensor): (bs, num_keys, C) flattened multi-level features.
            query_pos (Tensor): (bs, num_keys, C) positional plus level embedding.
            key_padding_mask (Tensor, optional): (bs, num_keys), True at padded pixels.
            reference_points (Tensor): (bs, num_keys, num_levels, 2) normalised (x, y).
            spatial_shapes (Tensor): (num_levels, 2) int64 (H_l, W_l).
            level_start_index (Tensor): (num_levels,) int64.
            **kwargs: Unused (``valid_ratios``, as mmdet passes it).

        Returns:
            Tensor: (bs, num_keys, C).
        """
        query = self.self_attn(query=query, value=query, query_pos=query_pos, key_padding_mask=key_padding_mask,
                               reference_points=reference_points, spatial_shapes=spatial_shapes,
                               level_start_index=level_start_index)  # x + MSDA(q = x + pos, v = x)
        query = self.norms[0](query)
        query = self.ffn(query)  # x + FFN(x)
        return self.norms[1](query)


@MODELS.register_module()
class DeformableDetrTransformerEncoder(BaseModule):
    """A stack of encoder layers sharing one reference grid (pixel centres of every level).

    Args:
        num_layers (int): Number of layers (6 in the paper).
        layer_cfg (dict): Config of every layer; ``type`` defaults to ``DeformableDetrTransformerEncoderLayer``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self, num_layers: int, layer_cfg: dict, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_layers = num_layers
        self.layers = build_layers(num_layers, layer_cfg, DeformableDetrTransformerEncoderLayer)
        self.embed_dims = self.layers[0].embed_dims

    def forward(self, query: Tensor, query_pos: Tensor, key_padding_mask: Optional[Tensor], spatial_shapes: Tensor,
                level_start_index: Tensor, valid_ratios: Tensor, **kwargs) -> Tensor:
        """
        Args:
            query (Tensor): (bs, num_keys, C), num_keys = sum of H_l * W_l.
            query_pos (Tensor): (bs, num_keys, C).
            key_padding_mask (Tensor, optional): (bs, num_keys), True at padded pixels.
            spatial_shapes (Tensor): (num_levels, 2) int64 (H_l, W_l).
            level_start_index (Tensor): (num_levels,) int64.
            valid_ratios (Tensor): (bs, num_levels, 2) valid (w, h) fraction of every level.

        Returns:
            Tensor: the memory, (bs, num_keys, C).
        """
        reference_points = self.get_encoder_reference_points(spatial_shapes, valid_ratios, query.shape[1])
        for layer in self.layers:
            query = layer(query=query, query_pos=query_pos, key_padding_mask=key_padding_mask,
                          spatial_shapes=spatial_shapes, level_start_index=level_start_index,
                          valid_ratios=valid_ratios, reference_points=reference_points, **kwargs)
        return query

    @staticmethod
    def get_encoder_reference_points(spatial_shapes: Tensor, valid_ratios: Tensor, num_keys: int) -> Tensor:
        """Pixel centres of every level (:func:`pixel_centres`), seen from every level.

        Args:
            spatial_shapes (Tensor): (num_levels, 2) int64 (H_l, W_l).
            valid_ratios (Tensor): (bs, num_levels, 2) valid (w, h) fraction of every level.
            num_keys (int): Sum of H_l * W_l.

        Returns:
            Tensor: (bs, num_keys, num_levels, 2) normalised (x, y).
        """
        return pixel_centres(spatial_shapes, valid_ratios, num_keys)[:, :, None] * valid_ratios[:, None]
