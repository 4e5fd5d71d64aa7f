"""The detector as one function of tensors, for torch.export and ONNX: padded images and valid sizes in, the final
detections out."""
from typing import Tuple

import torch
from torch import Tensor, nn


class DetectorWithPostprocess(nn.Module):
    """A Deformable DETR detector from the normalised, padded image batch to its top-k detections, on tensors alone.

    It runs the detector's own steps (``extract_feat``, ``forward_transformer_from_sizes``, the head's
    ``forward_last_layer`` and ``top_detections``), so its predictions are the detector's: per image, the
    ``test_cfg.max_per_img`` best (query, class) pairs with boxes in pixels of the input, clamped to the image's
    valid part. The valid sizes carry the padding masks, so the attention reads no padded pixel; the backbone and neck
    still see the padding, as in mmdet, so a padded image's predictions are not those it gets alone.

    Args:
        detector (nn.Module): A built ``mmddetr.DeformableDETR`` (any variant), put in eval mode.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector
        self.eval()

    def forward(self, images: Tensor, valid_sizes: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """
        Args:
            images (Tensor): (bs, 3, H, W) normalised images, each padded at the bottom and right to (H, W).
            valid_sizes (Tensor): (bs, 2) int64 (h, w) of each image's unpadded part, at most (H, W).

        Returns:
            tuple[Tensor, Tensor, Tensor]: scores (bs, k), labels (bs, k) int64 and boxes (bs, k, 4) (x1, y1, x2,
            y2) in pixels of ``images``, best first; k = ``test_cfg.max_per_img``.
        """
        detector = self.detector
        head_inputs = detector.forward_transformer_from_sizes(detector.extract_feat(images), images.shape[-2:],
                                                             valid_sizes)
        cls_scores, bbox_preds = detector.bbox_head.forward_last_layer(head_inputs['hidden_states'],
                                                                       head_inputs['references'])
        scores, labels, boxes, _ = detector.bbox_head.top_detections(cls_scores, bbox_preds, valid_sizes)
        return scores, labels, boxes


# The coarsest level (stride 64) must be more than one pixel: torch.export specialises sizes of 1.
MIN_SIZE = 65


def dynamic_shapes() -> Tuple[dict, dict]:
    """torch.export's dynamic shapes of ``(images, valid_sizes)``: any batch, height and width of at least
    ``MIN_SIZE``."""
    batch = torch.export.Dim('batch')
    height, width = torch.export.Dim('height', min=MIN_SIZE), torch.export.Dim('width', min=MIN_SIZE)
    return {0: batch, 2: height, 3: width}, {0: batch}


def export_program(model: DetectorWithPostprocess, images: Tensor,
                   valid_sizes: Tensor) -> torch.export.ExportedProgram:
    """``torch.export.export`` of the model with dynamic batch, height and width, traced on the example inputs."""
    with torch.no_grad():
        return torch.export.export(model, (images, valid_sizes), dynamic_shapes=dynamic_shapes())


def example_inputs(height: int, width: int) -> Tuple[Tensor, Tensor]:
    """A seeded example batch to trace and check an export with: two normalised images, one of (height, width) and
    one of 3/4 of it padded to that size (bs 2: a batch of 1 would be traced as a constant), and their valid sizes
    (2, 2) int64."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, height, width, generator=gen)
    small_h, small_w = max(height * 3 // 4, 1), max(width * 3 // 4, 1)
    images[1, :, small_h:] = 0
    images[1, :, :, small_w:] = 0
    return images, torch.tensor([[height, width], [small_h, small_w]])
