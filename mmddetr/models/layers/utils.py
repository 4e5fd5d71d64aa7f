"""Formulas shared by the encoder, the decoder and the heads, each written once."""
import torch
from mmdet.models.layers import inverse_sigmoid
from torch import Tensor


def pixel_centres(spatial_shapes: Tensor, valid_ratios: Tensor) -> Tensor:
    """Centre of every pixel of every level, normalised by the level's valid (unpadded) size:
    ``((j + 0.5) / (valid_ratio_w * W_l), (i + 0.5) / (valid_ratio_h * H_l))``. The encoder's reference points and
    the two-stage proposals' centres.

    Args:
        spatial_shapes (Tensor): (num_levels, 2) int64 (H_l, W_l).
        valid_ratios (Tensor): (bs, num_levels, 2) valid (w, h) fraction of every level.

    Returns:
        Tensor: (bs, num_keys, 2) (x, y), float32; num_keys = sum of H_l * W_l, levels in order, rows first.
    """
    centres = []
    for lvl, (H, W) in enumerate(spatial_shapes.tolist()):
        ref_y, ref_x = torch.meshgrid(
            torch.linspace(0.5, H - 0.5, H, dtype=torch.float32, device=valid_ratios.device),
            torch.linspace(0.5, W - 0.5, W, dtype=torch.float32, device=valid_ratios.device), indexing='ij')
        ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, lvl, 1] * H)  # (bs, H * W)
        ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, lvl, 0] * W)
        centres.append(torch.stack((ref_x, ref_y), -1))  # (bs, H * W, 2)
    return torch.cat(centres, 1)


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
