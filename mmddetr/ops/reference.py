"""Pure-PyTorch multi-scale deformable attention: the tests' oracle and the fallback where the extension is absent."""
import torch
import torch.nn.functional as F
from torch import Tensor


def multi_scale_deformable_attn_pytorch(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                                        sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
    """Bilinear sampling with ``grid_sample(align_corners=False, padding_mode='zeros')``, level by level.

    Args:
        value (Tensor): (bs, num_keys, num_heads, head_dims).
        spatial_shapes (Tensor): (num_levels, 2), (H_l, W_l) of each level.
        level_start_index (Tensor): (num_levels,), first key of each level.
        sampling_locations (Tensor): (bs, num_queries, num_heads, num_levels, num_points, 2), normalised (x, y).
        attention_weights (Tensor): (bs, num_queries, num_heads, num_levels, num_points).

    Returns:
        Tensor: (bs, num_queries, num_heads * head_dims).
    """
    bs, _, num_heads, head_dims = value.shape
    _, num_queries, _, num_levels, num_points, _ = sampling_locations.shape
    grids = 2 * sampling_locations.to(value.dtype) - 1  # grid_sample's [-1, 1] coordinates
    sampled = []
    for level, ((height, width), start) in enumerate(zip(spatial_shapes.tolist(), level_start_index.tolist())):
        # (bs * num_heads, head_dims, H_l, W_l)
        level_value = value[:, start:start + height * width].permute(0, 2, 3, 1).reshape(
            bs * num_heads, head_dims, height, width)
        # (bs * num_heads, num_queries, num_points, 2)
        level_grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        # (bs * num_heads, head_dims, num_queries, num_points)
        sampled.append(F.grid_sample(level_value, level_grid, mode='bilinear', padding_mode='zeros',
                                     align_corners=False))
    # (bs * num_heads, 1, num_queries, num_levels * num_points)
    weights = attention_weights.to(value.dtype).transpose(1, 2).reshape(
        bs * num_heads, 1, num_queries, num_levels * num_points)
    output = (torch.cat(sampled, dim=-1) * weights).sum(-1)  # (bs * num_heads, head_dims, num_queries)
    return output.view(bs, num_heads * head_dims, num_queries).transpose(1, 2).contiguous()
