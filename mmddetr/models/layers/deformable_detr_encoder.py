"""Deformable transformer encoder of Deformable DETR (arXiv 2010.04159, section 4.1)."""
from typing import Optional

import torch
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule, ModuleList
from torch import Tensor

from mmddetr.registry import MODELS
from .builder import build_from_cfg_or_default
from .fast_paths import use_fast_paths
from .multi_scale_deform_attn import MultiScaleDeformableAttention


@MODELS.register_module()
class DeformableDetrTransformerEncoderLayer(BaseModule):
    """``x = LN(x + Attn(q=x + pos, v=x))``, then ``x = LN(x + FFN(x))``.

    Args:
        self_attn_cfg (dict): Self-attention config; ``type`` defaults to ``mmddetr.MultiScaleDeformableAttention``,
            ``batch_first`` to True. Any module with that forward signature can be swapped in.
        ffn_cfg (dict): FFN config; ``type`` defaults to mmcv's ``FFN``.
        norm_cfg (dict): Normalisation after each sub-layer. Default: ``dict(type='LN')``.
        inference_chunk (int): Inference (eval mode, no autograd) runs the layer in chunks of this many queries
            after the value projection, everything after it being per query: each chunk's intermediates stay in
            cache instead of a fresh full-size tensor per step. Same values. Default: 4096.
        init_cfg (dict, optional): Initialisation config.

    Sub-modules get the faster equivalents of :func:`use_fast_paths` (dropout masks, ReLU in place only without autograd).
    """

    def __init__(self,
                 self_attn_cfg: Optional[dict] = None,
                 ffn_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='LN'),
                 inference_chunk: int = 4096,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if inference_chunk < 1:
            raise ValueError(f'inference_chunk must be at least 1, but got {inference_chunk}')
        self.inference_chunk = inference_chunk
        self.self_attn = build_from_cfg_or_default(
            self_attn_cfg, 'mmddetr.MultiScaleDeformableAttention', batch_first=True)
        self.embed_dims = self.self_attn.embed_dims
        self.ffn = build_from_cfg_or_default(ffn_cfg, 'FFN', embed_dims=self.embed_dims)
        self.norms = ModuleList([build_norm_layer(norm_cfg, self.embed_dims)[1] for _ in range(2)])
        use_fast_paths(self)

    def forward(self, query: Tensor, query_pos: Tensor, key_padding_mask: Optional[Tensor], **kwargs) -> Tensor:
        """
        Args:
            query (Tensor): (bs, num_keys, C) flattened multi-level features.
            query_pos (Tensor): (bs, num_keys, C) positional plus level embedding.
            key_padding_mask (Tensor, optional): (bs, num_keys), True at padded pixels.
            **kwargs: ``reference_points`` (bs, num_keys, num_levels, 2), ``spatial_shapes``,
                ``level_start_index``, ``valid_ratios`` for the attention.

        Returns:
            Tensor: (bs, num_keys, C).
        """
        if (not self.training and not torch.is_grad_enabled() and query.shape[1] > self.inference_chunk
                and isinstance(self.self_attn, MultiScaleDeformableAttention) and self.self_attn.batch_first):
            return self._infer_in_chunks(query, query_pos, key_padding_mask, **kwargs)
        query = self.self_attn(query=query, key=query, value=query, query_pos=query_pos, key_pos=query_pos,
                               key_padding_mask=key_padding_mask, **kwargs)
        query = self.norms[0](query)
        query = self.ffn(query)
        return self.norms[1](query)

    def _infer_in_chunks(self, query: Tensor, query_pos: Tensor, key_padding_mask: Optional[Tensor],
                         reference_points: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                         **kwargs) -> Tensor:
        """:meth:`forward` with the values projected once, then the rest chunk by chunk of queries."""
        value = self.self_attn.project_value(query, key_padding_mask)  # (bs, num_keys, num_heads, head_dims)
        out = torch.empty_like(query)
        for start in range(0, query.shape[1], self.inference_chunk):
            rows = slice(start, start + self.inference_chunk)
            x = self.self_attn.attend(query[:, rows] + query_pos[:, rows], value, query[:, rows],
                                      reference_points[:, rows], spatial_shapes, level_start_index)
            out[:, rows] = self.norms[1](self.ffn(self.norms[0](x)))
        return out


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
        if num_layers < 1:
            raise ValueError(f'num_layers must be at least 1, but got {num_layers}')
        self.num_layers = num_layers
        self.layers = ModuleList([
            build_from_cfg_or_default(layer_cfg, 'mmddetr.DeformableDetrTransformerEncoderLayer')
            for _ in range(num_layers)
        ])
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
        reference_points = self.get_encoder_reference_points(spatial_shapes, valid_ratios, device=query.device)
        for layer in self.layers:
            query = layer(query=query, query_pos=query_pos, key_padding_mask=key_padding_mask,
                          spatial_shapes=spatial_shapes, level_start_index=level_start_index,
                          valid_ratios=valid_ratios, reference_points=reference_points, **kwargs)
        return query

    @staticmethod
    def get_encoder_reference_points(spatial_shapes: Tensor, valid_ratios: Tensor, device: torch.device) -> Tensor:
        """Pixel centres of every level, normalised by the valid size, seen from every level.

        Args:
            spatial_shapes (Tensor): (num_levels, 2) int64 (H_l, W_l).
            valid_ratios (Tensor): (bs, num_levels, 2) valid (w, h) fraction of every level.
            device (torch.device): Device of the result.

        Returns:
            Tensor: (bs, num_keys, num_levels, 2) normalised (x, y).
        """
        reference_points = []
        for lvl, (H, W) in enumerate(spatial_shapes.tolist()):
            ref_y, ref_x = torch.meshgrid(
                torch.linspace(0.5, H - 0.5, H, dtype=torch.float32, device=device),
                torch.linspace(0.5, W - 0.5, W, dtype=torch.float32, device=device), indexing='ij')
            ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, lvl, 1] * H)  # (bs, H * W)
            ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, lvl, 0] * W)
            reference_points.append(torch.stack((ref_x, ref_y), -1))  # (bs, H * W, 2)
        reference_points = torch.cat(reference_points, 1)  # (bs, num_keys, 2)
        return reference_points[:, :, None] * valid_ratios[:, None]  # (bs, num_keys, num_levels, 2)
