"""Deformable DETR's encoder and decoder layers built from the fast sub-layers; the encoder layer attends in chunks of
queries at inference."""
from typing import Optional

import torch
from torch import Tensor

from mmddetr.models.layers import (DeformableDetrTransformerDecoderLayer, DeformableDetrTransformerEncoderLayer,
                                   MultiScaleDeformableAttention)
from mmddetr.registry import MODELS
from .deformable_attention import FastMultiScaleDeformableAttention
from .ffn import FastFFN
from .multihead_attention import FastMultiheadAttention

# Queries per inference chunk times the FFN's width: 16 MB of float32 hidden activations per chunk, below glibc's
# 32 MB threshold above which every allocation is mapped (and page-faulted in) afresh.
CHUNK_HIDDEN_ELEMENTS = 4 * 2**20


@MODELS.register_module()
class FastDeformableDetrTransformerEncoderLayer(DeformableDetrTransformerEncoderLayer):
    """:class:`DeformableDetrTransformerEncoderLayer` (same arguments, parameters and values) built from
    :class:`FastMultiScaleDeformableAttention` and :class:`FastFFN` by default, which without autograd projects the
    values once and then runs the rest of the layer, all per query, in chunks of queries: each chunk's intermediates
    stay in cache instead of a fresh full-size tensor per step.

    Args:
        self_attn_cfg (dict): As the plain layer's; the attention must be mmddetr's
            :class:`MultiScaleDeformableAttention` (or a subclass), whose ``project_value`` and ``attend`` split it.
        ffn_cfg (dict), norm_cfg (dict), init_cfg (dict, optional): As the plain layer's.
        inference_chunk (int, optional): Queries per chunk; None: ``CHUNK_HIDDEN_ELEMENTS // feedforward_channels``
            of the FFN (4,096 for a 1,024-wide FFN, 2,048 for DINO's 2,048). With autograd, and under torch.compile /
            torch.export (where the number of queries is a symbolic size that a Python loop would fix), the layer runs
            as the plain one.
    """
    self_attn_type = FastMultiScaleDeformableAttention
    ffn_type = FastFFN

    def __init__(self, inference_chunk: Optional[int] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if not isinstance(self.self_attn, MultiScaleDeformableAttention):
            raise TypeError(f'self_attn_cfg: the fast encoder layer needs mmddetr\'s MultiScaleDeformableAttention '
                            f'(its project_value and attend), got {type(self.self_attn).__qualname__}; the plain '
                            f'DeformableDetrTransformerEncoderLayer takes any attention')
        if inference_chunk is None:
            inference_chunk = max(1, CHUNK_HIDDEN_ELEMENTS // self.ffn.feedforward_channels)
        if inference_chunk < 1:
            raise ValueError(f'inference_chunk must be at least 1, but got {inference_chunk}')
        self.inference_chunk = inference_chunk

    def forward(self, query: Tensor, query_pos: Tensor, key_padding_mask: Optional[Tensor], reference_points: Tensor,
                spatial_shapes: Tensor, level_start_index: Tensor, **kwargs) -> Tensor:
        """The plain layer's forward (same arguments and values), in chunks of queries without autograd."""
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            return super().forward(query, query_pos, key_padding_mask, reference_points, spatial_shapes,
                                   level_start_index)
        value = self.self_attn.project_value(query, key_padding_mask)  # (bs, num_keys, num_heads, head_dims)
        outputs = []
        for start in range(0, query.shape[1], self.inference_chunk):
            rows = slice(start, start + self.inference_chunk)
            x = self.self_attn.attend(query[:, rows] + query_pos[:, rows], value, query[:, rows],
                                      reference_points[:, rows], spatial_shapes, level_start_index)
            outputs.append(self.norms[1](self.ffn(self.norms[0](x))))  # (bs, chunk, C)
        return torch.cat(outputs, 1)


@MODELS.register_module()
class FastDeformableDetrTransformerDecoderLayer(DeformableDetrTransformerDecoderLayer):
    """:class:`DeformableDetrTransformerDecoderLayer` (same arguments, parameters and maths) built from
    :class:`FastMultiheadAttention`, :class:`FastMultiScaleDeformableAttention` and :class:`FastFFN` by default."""
    self_attn_type = FastMultiheadAttention
    cross_attn_type = FastMultiScaleDeformableAttention
    ffn_type = FastFFN
