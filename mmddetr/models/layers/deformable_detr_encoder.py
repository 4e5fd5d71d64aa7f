"""Deformable transformer encoder of Deformable DETR (arXiv 2010.04159, section 4.1)."""
from typing import Optional

import torch
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule, ModuleList
from torch import Tensor

from mmddetr.registry import MODELS
from .builder import build_from_cfg_or_default
from .utils import pixel_centres


@MODELS.register_module()
class DeformableDetrTransformerEncoderLayer(BaseModule):
    """``x = LN(x + Attn(q=x + pos, v=x))``, then ``x = LN(x + FFN(x))``.

    Args:
        self_attn_cfg (dict): Self-attention config; ``type`` defaults to ``mmddetr.MultiScaleDeformableAttention``,
            ``batch_first`` to True. Another module can be swapped in if it has that class's ``project_value`` and
            ``attend`` (the layer projects the values once, then attends query by query).
        ffn_cfg (dict): FFN config (mmcv's ``FFN`` arguments); ``type`` defaults to ``mmddetr.FastFFN``.
        norm_cfg (dict): Normalisation after each sub-layer. Default: ``dict(type='LN')``.
        inference_chunk (int): Without autograd, the layer runs in chunks of this many queries after the value
            projection, everything after it being per query: each chunk's intermediates stay in cache instead of a
            fresh full-size tensor per step. Same values. With autograd, and under torch.compile / torch.export
            (where the number of queries is a symbolic size that a Python loop would fix), one chunk of all queries.
            Default: 4096.
        init_cfg (dict, optional): Initialisation config.
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
        if not (hasattr(self.self_attn, 'project_value') and hasattr(self.self_attn, 'attend')):
            raise TypeError(f'self_attn_cfg: the encoder layer needs an attention with project_value and attend, as '
                            f'mmddetr.MultiScaleDeformableAttention has, got {type(self.self_attn).__qualname__} '
                            f'(mmdet\'s DeformableDetrTransformerEncoderLayer runs mmcv\'s attention)')
        if not self.self_attn.batch_first:
            raise ValueError('self_attn_cfg.batch_first must be True: the encoder layer is batch first')
        self.embed_dims = self.self_attn.embed_dims
        self.ffn = build_from_cfg_or_default(ffn_cfg, 'mmddetr.FastFFN', embed_dims=self.embed_dims)
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
        value = self.self_attn.project_value(query, key_padding_mask)  # (bs, num_keys, num_heads, head_dims)
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            chunks = [slice(None)]
        else:
            chunks = [slice(start, start + self.inference_chunk)
                      for start in range(0, query.shape[1], self.inference_chunk)]
        outputs = []
        for rows in chunks:
            x = self.self_attn.attend(query[:, rows] + query_pos[:, rows], value, query[:, rows],
                                      reference_points[:, rows], spatial_shapes, level_start_index)
            outputs.append(self.norms[1](self.ffn(self.norms[0](x))))  # (bs, chunk, C)
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs, 1)


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
