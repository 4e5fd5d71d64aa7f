"""Deformable transformer decoder of Deformable DETR, with iterative box refinement (arXiv 2010.04159, A.4)."""
from typing import Optional, Tuple

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import FFN, MultiheadAttention
from mmengine.model import BaseModule, ModuleList
from torch import Tensor, nn

from mmddetr.registry import MODELS
from .builder import build_from_cfg_or_default, build_layers
from .multi_scale_deform_attn import MultiScaleDeformableAttention
from .utils import refine_boxes


@MODELS.register_module()
class DeformableDetrTransformerDecoderLayer(BaseModule):
    """Self-attention (q = k = t + pos) → LN → deformable cross-attention on the memory → LN → FFN → LN.

    The sub-layers a config gives no ``type`` are :attr:`self_attn_type`, :attr:`cross_attn_type` and
    :attr:`ffn_type`; :class:`mmddetr.models.fast.FastDeformableDetrTransformerDecoderLayer` is this layer with faster
    ones.

    Args:
        self_attn_cfg (dict): Self-attention config (mmcv's ``MultiheadAttention`` arguments); ``type`` defaults to
            :attr:`self_attn_type`, ``batch_first`` to True.
        cross_attn_cfg (dict): Cross-attention config; ``type`` defaults to :attr:`cross_attn_type`, ``batch_first``
            to True.
        ffn_cfg (dict): FFN config (mmcv's ``FFN`` arguments); ``type`` defaults to :attr:`ffn_type`.
        norm_cfg (dict): Normalisation after each sub-layer. Default: ``dict(type='LN')``.
        init_cfg (dict, optional): Initialisation config.
    """
    self_attn_type = MultiheadAttention
    cross_attn_type = MultiScaleDeformableAttention
    ffn_type = FFN

    def __init__(self,
                 self_attn_cfg: Optional[dict] = None,
                 cross_attn_cfg: Optional[dict] = None,
                 ffn_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='LN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.self_attn = build_from_cfg_or_default(self_attn_cfg, self.self_attn_type, batch_first=True)
        self.embed_dims = self.self_attn.embed_dims
        self.cross_attn = build_from_cfg_or_default(cross_attn_cfg, self.cross_attn_type, batch_first=True,
                                                    embed_dims=self.embed_dims)
        self.ffn = build_from_cfg_or_default(ffn_cfg, self.ffn_type, embed_dims=self.embed_dims)
        self.norms = ModuleList([build_norm_layer(norm_cfg, self.embed_dims)[1] for _ in range(3)])

    def forward(self,
                query: Tensor,
                value: Tensor,
                query_pos: Tensor,
                key_padding_mask: Optional[Tensor] = None,
                self_attn_mask: Optional[Tensor] = None,
                **kwargs) -> Tensor:
        """
        Args:
            query (Tensor): (bs, num_queries, C) content queries.
            value (Tensor): (bs, num_keys, C) encoder memory.
            query_pos (Tensor): (bs, num_queries, C) positional queries.
            key_padding_mask (Tensor, optional): (bs, num_keys), True at padded pixels.
            self_attn_mask (Tensor, optional): (num_queries, num_queries) self-attention mask.
            **kwargs: ``reference_points`` (bs, num_queries, num_levels, 2 or 4), ``spatial_shapes``,
                ``level_start_index``, ``valid_ratios`` for the cross-attention.

        Returns:
            Tensor: (bs, num_queries, C).
        """
        query = self.self_attn(query=query, key=query, value=query, query_pos=query_pos, key_pos=query_pos,
                               attn_mask=self_attn_mask)  # t + SelfAttn(q = k = t + pos, v = t)
        query = self.norms[0](query)
        query = self.cross_attn(query=query, value=value, query_pos=query_pos, key_padding_mask=key_padding_mask,
                                **kwargs)  # t + MSDA(q = t + pos, v = memory)
        query = self.norms[1](query)
        query = self.ffn(query)  # t + FFN(t)
        return self.norms[2](query)


@MODELS.register_module()
class DeformableDetrTransformerDecoder(BaseModule):
    """A stack of decoder layers; with ``reg_branches`` given, every layer refines the reference boxes.

    Args:
        num_layers (int): Number of layers (6 in the paper).
        layer_cfg (dict): Config of every layer; ``type`` defaults to ``DeformableDetrTransformerDecoderLayer``.
        post_norm_cfg (dict, optional): Must be None (Deformable DETR has no final norm); kept for mmdet configs.
        return_intermediate (bool): Return the output of every layer (for the auxiliary losses). Default: True.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 num_layers: int,
                 layer_cfg: dict,
                 post_norm_cfg: Optional[dict] = None,
                 return_intermediate: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if post_norm_cfg is not None:
            raise ValueError(f'post_norm_cfg must be None: Deformable DETR has no post norm, got {post_norm_cfg}')
        self.num_layers = num_layers
        self.return_intermediate = return_intermediate
        self.layers = build_layers(num_layers, layer_cfg, DeformableDetrTransformerDecoderLayer)
        self.embed_dims = self.layers[0].embed_dims

    def forward(self,
                query: Tensor,
                query_pos: Tensor,
                value: Tensor,
                key_padding_mask: Optional[Tensor],
                reference_points: Tensor,
                spatial_shapes: Tensor,
                level_start_index: Tensor,
                valid_ratios: Tensor,
                reg_branches: Optional[nn.ModuleList] = None,
                **kwargs) -> Tuple[Tensor, Tensor]:
        """
        Args:
            query (Tensor): (bs, num_queries, C).
            query_pos (Tensor): (bs, num_queries, C).
            value (Tensor): (bs, num_keys, C) encoder memory.
            key_padding_mask (Tensor, optional): (bs, num_keys), True at padded pixels.
            reference_points (Tensor): (bs, num_queries, 2) normalised (cx, cy), or (bs, num_queries, 4) boxes
                (cx, cy, w, h) in two-stage mode.
            spatial_shapes (Tensor): (num_levels, 2) int64 (H_l, W_l).
            level_start_index (Tensor): (num_levels,) int64.
            valid_ratios (Tensor): (bs, num_levels, 2).
            reg_branches (nn.ModuleList, optional): One box branch per layer; when given, layer l's reference
                becomes ``refine_boxes(reg_branches[l](out), ref)``, detached.

        Returns:
            tuple[Tensor, Tensor]: outputs (num_layers, bs, num_queries, C) and the reference after each layer
            (num_layers, bs, num_queries, 2 or 4); without ``return_intermediate`` only the last layer's, with no
            leading dimension.
        """
        outputs, references = [], []
        for layer_id, layer in enumerate(self.layers):
            ratios = valid_ratios if reference_points.shape[-1] == 2 else torch.cat([valid_ratios, valid_ratios], -1)
            reference_points_input = reference_points[:, :, None] * ratios[:, None]  # (bs, nq, num_levels, 2|4)
            query = layer(query, value=value, query_pos=query_pos, key_padding_mask=key_padding_mask,
                          spatial_shapes=spatial_shapes, level_start_index=level_start_index,
                          valid_ratios=valid_ratios, reference_points=reference_points_input, **kwargs)
            if reg_branches is not None:
                reference_points = refine_boxes(reg_branches[layer_id](query), reference_points).detach()
            outputs.append(query)
            references.append(reference_points)
        if self.return_intermediate:
            return torch.stack(outputs), torch.stack(references)
        return query, reference_points
