"""Opt-in: run mmdet's own DETR-family models on mmddetr's multi-scale deformable attention.

Add to any mmdet 3.3.0 config::

    custom_imports = dict(imports=['mmddetr.mmdet_ops'], allow_failed_imports=False)

Importing this module rebinds ``MultiScaleDeformableAttention`` in mmdet's Deformable DETR, DINO, DDQ-DETR, Grounding
DINO and Mask2Former modules to :class:`mmddetr.models.MultiScaleDeformableAttention` (same constructor arguments,
parameter names and outputs; mmdet checkpoints load strictly). Nothing else changes, and nothing changes in a process
that does not import it. To switch it off, drop the import, or call
``mmddetr.models.use_mmddetr_attention_in_mmdet(False)`` before building the model.
"""
from mmddetr.models.mmdet_attention import use_mmddetr_attention_in_mmdet

use_mmddetr_attention_in_mmdet(True)
