"""Formulas shared by the encoder, the decoder and the heads, each written once."""
from typing import Tuple

import torch
from mmdet.models.layers import inverse_sigmoid
from torch import Tensor


def key_pixels(spatial_shapes: Tensor, num_keys: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Level, row and column of every key of the flattened levels (levels in order, rows first).

    Computed from the tensor of level sizes without reading its values into Python, so that under torch.export
    (where they are symbolic) nothing depends on data; ``num_keys`` is a size (of the flattened features).

    Args:
        spatial_shapes (Tensor): (num_levels, 2) int64 (H_l, W_l).
        num_keys (int): Sum of H_l * W_l.

    Returns:
        tuple[Tensor, Tensor, Tensor]: level, row i and column j of each key, each (num_keys, ) int64.
    """
    sizes = spatial_shapes.prod(1)  # (num_levels, )
    starts = sizes.cumsum(0) - sizes  # (num_levels, ) first key of each level
    keys = torch.arange(num_keys, device=spatial_shapes.device)  # (num_keys, )
    level = (keys[:, None] >= starts).sum(1) - 1  # (num_keys, )
    pixel = keys - starts[level]  # (num_keys, ) index within its level
    width = spatial_shapes[level, 1]  # (num_keys, )
    return level, pixel // width, pixel % width


def key_centres(spatial_shapes: Tensor, valid_ratios: Tensor, num_keys: int) -> Tuple[Tensor, Tensor]:
    """Centre of every pixel of every level in pixels, ``(j + 0.5, i + 0.5)``, and its level's valid (unpadded) size
    in pixels, ``(valid_ratio_w * W_l, valid_ratio_h * H_l)``.

    Args:
        spatial_shapes (Tensor): (num_levels, 2) int64 (H_l, W_l).
        valid_ratios (Tensor): (bs, num_levels, 2) valid (w, h) fraction of every level.
        num_keys (int): Sum of H_l * W_l (a size of the flattened features).

    Returns:
        tuple[Tensor, Tensor]: centres (num_keys, 2) (x, y) and valid sizes (bs, num_keys, 2) (w, h), float32;
        levels in order, rows first.
    """
    level, row, col = key_pixels(spatial_shapes, num_keys)
    centres = torch.stack((col, row), -1) + 0.5  # (num_keys, 2) (j + 0.5, i + 0.5), float32
    return centres, valid_ratios[:, level] * spatial_shapes[level].flip(-1)  # valid (w, h): (bs, num_keys, 2)


def pixel_centres(spatial_shapes: Tensor, valid_ratios: Tensor, num_keys: int) -> Tensor:
    """Centre of every pixel of every level, normalised by the level's valid (unpadded) size:
    ``((j + 0.5) / (valid_ratio_w * W_l), (i + 0.5) / (valid_ratio_h * H_l))``. The encoder's reference points and
    the two-stage proposals' centres.

    Args:
        spatial_shapes (Tensor): (num_levels, 2) int64 (H_l, W_l).
        valid_ratios (Tensor): (bs, num_levels, 2) valid (w, h) fraction of every level.
        num_keys (int): Sum of H_l * W_l (a size of the flattened features).

    Returns:
        Tensor: (bs, num_keys, 2) (x, y), float32; levels in order, rows first.
    """
    centres, valid_size = key_centres(spatial_shapes, valid_ratios, num_keys)
    return centres / valid_size


def refine_boxes(delta: Tensor, reference: Tensor) -> Tensor:
    """A box regressed relative to its reference in logit space: ``sigmoid(delta + inverse_sigmoid(reference))``.

    Args:
        delta (Tensor): (..., 4) regression output.
        reference (Tensor): (..., 4) boxes (cx, cy, w, h), or (..., 2) points (cx, cy): a point only moves the centre,
            the width and height come from ``delta`` alone.

    Returns:
        Tensor: (..., 4) boxes (cx, cy, w, h) in [0, 1].
    """
    if reference.shape[-1] == 4:
        return (delta + inverse_sigmoid(reference)).sigmoid()
    centre = delta[..., :2] + inverse_sigmoid(reference)
    return torch.cat([centre, delta[..., 2:]], -1).sigmoid()
