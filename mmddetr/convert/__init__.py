"""Checkpoint conversion to and from mmddetr's (mmdet's) layout: the official Deformable DETR's
(:mod:`~mmddetr.convert.official`) and Hugging Face's ``DeformableDetrForObjectDetection`` (:mod:`~mmddetr.convert.hf`).
These import torch alone (transformers only to write a Hugging Face directory); :mod:`~mmddetr.convert.checkpoint`
writes a converted checkpoint with its config, and reads a detector back, with mmdet."""
from .common import COCO_CATEGORY_IDS, coco_class_rows
from .hf import HFCheckpointError, arch_of, hf_to_mmddetr, mmddetr_to_hf, read_hf_dir, write_hf_dir
from .official import detect_variant, official_to_mmddetr, read_official_checkpoint

__all__ = [
    'COCO_CATEGORY_IDS', 'HFCheckpointError', 'arch_of', 'coco_class_rows', 'detect_variant', 'hf_to_mmddetr',
    'mmddetr_to_hf', 'official_to_mmddetr', 'read_hf_dir', 'read_official_checkpoint', 'write_hf_dir'
]
