"""Hugging Face Deformable DETR models for the conversion tests (``pytest.ini`` puts ``tests/`` on the import path):
transformers' ``DeformableDetrForObjectDetection`` built from its config with random weights (no hub access, no
timm: transformers' own ResNet-50, the backbone the converter maps), small enough for the CPU: 1 encoder and 2 decoder
layers, 12 queries."""
import copy
import json
import os

import torch
from torch import nn

from random_weights import perturb

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, 'convert', 'hub_coco_id2label.json')) as f:
    HUB_COCO_ID2LABEL = json.load(f)['id2label']  # 91 rows by category id, "N/A" at the ids without a class
VARIANTS = {  # the official converter's variant names: config.json settings
    'single_scale': dict(num_feature_levels=1),
    'plain': dict(),
    'refine': dict(with_box_refine=True),
    'refine_twostage': dict(with_box_refine=True, two_stage=True),
}
NUM_QUERIES = 12


def hf_config(variant: str, id2label: dict):
    """transformers' ``DeformableDetrConfig`` of a small ``variant`` on transformers' ResNet-50."""
    from transformers import DeformableDetrConfig, ResNetConfig
    settings = VARIANTS[variant]
    out_features = ['stage4'] if settings.get('num_feature_levels') == 1 else ['stage2', 'stage3', 'stage4']
    return DeformableDetrConfig(backbone_config=ResNetConfig(depths=[3, 4, 6, 3], out_features=out_features),
                                id2label=id2label, encoder_layers=1, decoder_layers=2, num_queries=NUM_QUERIES,
                                two_stage_num_proposals=NUM_QUERIES, **settings)


def hf_model(variant: str, id2label: dict = HUB_COCO_ID2LABEL, seed: int = 0) -> nn.Module:
    """A random ``DeformableDetrForObjectDetection`` of ``variant`` in eval mode: every weight and frozen-BN statistic
    perturbed, so that no zero-initialised path hides a mapping error. Refinement models get a class head of their
    own per decoder layer, as the hub's (transformers 5.x would otherwise build them tied)."""
    from transformers import DeformableDetrForObjectDetection
    torch.manual_seed(seed)
    model = DeformableDetrForObjectDetection(hf_config(variant, id2label))
    if model.config.with_box_refine and not model.config.two_stage:
        model.class_embed = nn.ModuleList([copy.deepcopy(head) for head in model.class_embed])
    return perturb(model, seed, scale=0.05, statistics=True).eval()
