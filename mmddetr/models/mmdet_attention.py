"""mmdet's DETR family on mmddetr's attention: the switch behind ``custom_imports=['mmddetr.mmdet_ops']``.

mmdet 3.3.0 builds mmcv's ``MultiScaleDeformableAttention`` directly, not through a registry: each module below
imports the class by that name and calls it (deformable, DINO, DDQ and Grounding DINO layers) or checks
``isinstance`` against it in ``init_weights`` (Deformable DETR, DINO, DDQ-DETR, Mask2Former's pixel decoder). Rebinding
that one name in these modules makes every such model build and initialise :class:`MultiScaleDeformableAttention`
(ours: same arguments, parameter names and maths) at its next construction; models built before keep what they have.
"""
import contextlib
import importlib
from typing import Iterator

from .layers import MultiScaleDeformableAttention

MMDET_MODULES = (
    'mmdet.models.layers.transformer.deformable_detr_layers',  # encoder self-, decoder cross-attention (DINO, DDQ)
    'mmdet.models.layers.transformer.grounding_dino_layers',  # Grounding DINO's decoder cross-attention
    'mmdet.models.layers.msdeformattn_pixel_decoder',  # Mask2Former's pixel decoder (init_weights)
    'mmdet.models.detectors.deformable_detr',  # init_weights
    'mmdet.models.detectors.dino',  # init_weights
    'mmdet.models.detectors.ddq_detr',  # init_weights
)


def use_mmddetr_attention_in_mmdet(enable: bool = True) -> None:
    """Make mmdet's DETR-family modules build mmddetr's attention (``enable=True``) or mmcv's again (False)."""
    from mmcv.ops import MultiScaleDeformableAttention as MmcvAttention
    attention = MultiScaleDeformableAttention if enable else MmcvAttention
    for name in MMDET_MODULES:
        importlib.import_module(name).MultiScaleDeformableAttention = attention


def mmdet_uses_mmddetr_attention() -> bool:
    """Whether mmdet's DETR-family modules currently build mmddetr's attention."""
    return all(importlib.import_module(name).MultiScaleDeformableAttention is MultiScaleDeformableAttention
               for name in MMDET_MODULES)


@contextlib.contextmanager
def mmdet_attention(mmddetr: bool = True) -> Iterator[None]:
    """Within the block, mmdet builds mmddetr's attention (or mmcv's with ``mmddetr=False``); the previous choice
    comes back after it."""
    before = mmdet_uses_mmddetr_attention()
    use_mmddetr_attention_in_mmdet(mmddetr)
    try:
        yield
    finally:
        use_mmddetr_attention_in_mmdet(before)
