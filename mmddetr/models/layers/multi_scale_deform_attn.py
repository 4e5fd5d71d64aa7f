"""Multi-scale deformable attention module: a drop-in for mmcv's ``MultiScaleDeformableAttention``."""
import math
from typing import Optional, Tuple

import torch
from mmengine.model import BaseModule, constant_init, xavier_init
from mmengine.utils import deprecated_api_warning
from torch import Tensor, nn

from mmddetr.ops import multi_scale_deformable_attn
from mmddetr.registry import MODELS


@MODELS.register_module()
class MultiScaleDeformableAttention(BaseModule):
    """Multi-scale deformable attention of Deformable DETR (arXiv 2010.04159, eq. 3) on mmddetr's op.

    Same constructor arguments, forward signature, parameter names and initialisation as mmcv's
    ``MultiScaleDeformableAttention``, so it replaces it in any mmdet model and loads its weights; the op runs
    compiled on CPU and CUDA.

    Args:
        embed_dims (int): Channels C of queries and values. Default: 256.
        num_heads (int): Heads M; C must be divisible by M. Default: 8.
        num_levels (int): Feature levels L. Default: 4.
        num_points (int): Sampling points K per head and level. Default: 4.
        im2col_step (int): Kept for mmcv compatibility; our op needs no batch chunking. Default: 64.
        dropout (float): Dropout on the output before the residual (``nn.Dropout``). Default: 0.1.
        batch_first (bool): Inputs are (bs, n, C) rather than (n, bs, C). Default: False.
        norm_cfg (dict, optional): Unused, as in mmcv. Default: None.
        init_cfg (dict, optional): Initialisation config. Default: None.
        value_proj_ratio (float): Width of the value projection relative to C. Default: 1.0.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 num_levels: int = 4,
                 num_points: int = 4,
                 im2col_step: int = 64,
                 dropout: float = 0.1,
                 batch_first: bool = False,
                 norm_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 value_proj_ratio: float = 1.0):
        super().__init__(init_cfg)
        if embed_dims % num_heads != 0:
            raise ValueError(f'embed_dims must be divisible by num_heads, but got {embed_dims} and {num_heads}')
        value_proj_size = int(embed_dims * value_proj_ratio)
        if value_proj_size % num_heads != 0:
            raise ValueError(f'embed_dims * value_proj_ratio ({value_proj_size}) must be divisible by num_heads '
                             f'({num_heads})')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_points = num_points
        self.im2col_step = im2col_step
        self.batch_first = batch_first
        self.norm_cfg = norm_cfg
        self.dropout = nn.Dropout(dropout)
        self.sampling_offsets = nn.Linear(embed_dims, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dims, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dims, value_proj_size)
        self.output_proj = nn.Linear(value_proj_size, embed_dims)
        self.init_weights()

    def init_weights(self) -> None:
        """Offsets start on a ring of directions per head, point k at distance k + 1; attention starts uniform."""
        constant_init(self.sampling_offsets, 0.)
        thetas = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)  # (num_heads, 2)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]
        # (num_heads, num_levels, num_points, 2)
        grid = grid[:, None, None, :].repeat(1, self.num_levels, self.num_points, 1)
        grid *= torch.arange(1, self.num_points + 1, dtype=torch.float32)[None, None, :, None]
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        constant_init(self.attention_weights, val=0., bias=0.)
        xavier_init(self.value_proj, distribution='uniform', bias=0.)
        xavier_init(self.output_proj, distribution='uniform', bias=0.)
        self._is_init = True

    @deprecated_api_warning({'residual': 'identity'}, cls_name='MultiScaleDeformableAttention')
    def forward(self,
                query: Tensor,
                key: Optional[Tensor] = None,
                value: Optional[Tensor] = None,
                identity: Optional[Tensor] = None,
                query_pos: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None,
                reference_points: Optional[Tensor] = None,
                spatial_shapes: Optional[Tensor] = None,
                level_start_index: Optional[Tensor] = None,
                **kwargs) -> Tensor:
        """Attend from each query to num_levels * num_points sampled values around its reference.

        Args:
            query (Tensor): (num_query, bs, C), or (bs, num_query, C) with ``batch_first``.
            key (Tensor, optional): Unused (keys are the sampled values).
            value (Tensor, optional): (num_value, bs, C) or (bs, num_value, C); ``query`` when None.
            identity (Tensor, optional): Residual added to the output; ``query`` when None.
            query_pos (Tensor, optional): Positional encoding added to ``query`` for offsets and weights.
            key_padding_mask (Tensor, optional): (bs, num_value), True at padded values (zeroed).
            reference_points (Tensor): (bs, num_query, num_levels, 2) normalised (x, y) in [0, 1], or
                (bs, num_query, num_levels, 4) boxes (cx, cy, w, h).
            spatial_shapes (Tensor): (num_levels, 2) int64, (H, W) of each level.
            level_start_index (Tensor): (num_levels,) int64, first value of each level.

        Returns:
            Tensor: same layout as ``query``, C channels.
        """
        if value is None:
            value = query
        if identity is None:
            identity = query
        if query_pos is not None:
            query = query + query_pos
        if not self.batch_first:
            query = query.permute(1, 0, 2)  # (bs, num_query, C)
            value = value.permute(1, 0, 2)  # (bs, num_value, C)
        if reference_points is None or reference_points.shape[-1] not in (2, 4):
            got = None if reference_points is None else tuple(reference_points.shape)
            raise ValueError(f'reference_points: expected (bs, num_query, num_levels, 2 or 4), got {got}')
        output = self.attend(query, self.project_value(value, key_padding_mask), identity if self.batch_first else
                             identity.permute(1, 0, 2), reference_points, spatial_shapes, level_start_index)
        return output if self.batch_first else output.permute(1, 0, 2)

    def project_value(self, value: Tensor, key_padding_mask: Optional[Tensor] = None) -> Tensor:
        """The value side of :meth:`forward`, which every query samples from: (bs, num_value, C) → (bs, num_value,
        num_heads, head_dims), zero at padded positions (``key_padding_mask`` (bs, num_value), True there)."""
        bs, num_value, _ = value.shape
        value = self.value_proj(value)
        if key_padding_mask is not None:
            value = value.masked_fill(key_padding_mask[..., None], 0.0)
        return value.view(bs, num_value, self.num_heads, -1)

    def attend(self, query: Tensor, value: Tensor, identity: Tensor, reference_points: Tensor, spatial_shapes: Tensor,
               level_start_index: Tensor) -> Tensor:
        """The query side of :meth:`forward`, batch first: any subset of the queries gives those rows (the fast
        encoder layer, :class:`mmddetr.models.fast.FastDeformableDetrTransformerEncoderLayer`, attends chunk by chunk).

        Args:
            query (Tensor): (bs, num_query, C), positional encoding included.
            value (Tensor): (bs, num_value, num_heads, head_dims) from :meth:`project_value`.
            identity (Tensor): (bs, num_query, C) residual.
            reference_points, spatial_shapes, level_start_index: as in :meth:`forward`.

        Returns:
            Tensor: (bs, num_query, C).
        """
        sampling_locations, attention_weights = self.sampling_points(query, reference_points, spatial_shapes)
        output = multi_scale_deformable_attn(value, spatial_shapes, level_start_index, sampling_locations,
                                             attention_weights, self.im2col_step)
        return self.dropout(self.output_proj(output)) + identity  # (bs, num_query, C)

    def sampling_points(self, query: Tensor, reference_points: Tensor,
                        spatial_shapes: Tensor) -> Tuple[Tensor, Tensor]:
        """Where each query samples and with what weight (also for visualising the attention).

        Args:
            query (Tensor): (bs, num_query, C), positional encoding included.
            reference_points (Tensor): (bs, num_query, num_levels, 2 or 4), see :meth:`forward`.
            spatial_shapes (Tensor): (num_levels, 2) int64, (H, W) of each level.

        Returns:
            tuple[Tensor, Tensor]: normalised (x, y) locations (bs, num_query, num_heads, num_levels, num_points, 2)
            and attention weights (bs, num_query, num_heads, num_levels, num_points), summing to 1 per head.
        """
        bs, num_query, _ = query.shape
        # (bs, num_query, num_heads, num_levels, num_points): softmax jointly over levels and points
        attention_weights = self.attention_weights(query).view(
            bs, num_query, self.num_heads, self.num_levels * self.num_points).softmax(-1).view(
                bs, num_query, self.num_heads, self.num_levels, self.num_points)
        # (bs, num_query, num_heads, num_levels, num_points, 2), in at least float32 (half-precision locations would
        # be off by a pixel on large maps)
        dtype = torch.promote_types(query.dtype, torch.float32)
        offsets = self.sampling_offsets(query).view(
            bs, num_query, self.num_heads, self.num_levels, self.num_points, 2).to(dtype)
        reference_points = reference_points.to(dtype)[:, :, None, :, None, :]
        if reference_points.shape[-1] == 2:
            # eq. 3: p_l = ref + offset / (W_l, H_l), offsets in pixels of their level. The reference and (W_l, H_l)
            # repeated over the points first, so that the add broadcasts over heads alone, in long contiguous runs
            # (docs/benchmarks.md).
            offset_normalizer = spatial_shapes.flip(-1).to(dtype)[:, None, :].expand(
                self.num_levels, self.num_points, 2)  # (num_levels, num_points, 2)
            reference_points = reference_points.expand(bs, num_query, 1, self.num_levels, self.num_points, 2)
            return torch.addcdiv(reference_points.contiguous(), offsets, offset_normalizer.contiguous()), \
                attention_weights
        # box references (cx, cy, w, h): the K points spread over half the box, p = ref_xy + offset / K * ref_wh / 2
        return torch.addcmul(reference_points[..., :2], offsets, reference_points[..., 2:] * (0.5 / self.num_points)), \
            attention_weights
