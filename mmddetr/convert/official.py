"""Checkpoints of the official Deformable DETR (fundamentalvision/Deformable-DETR) → mmddetr's (mmdet's) state dicts.

The variant (levels, box refinement, two-stage) is read from the keys. The 91 class logits, indexed by COCO category
id, become the 80 classes of mmdet's ``CocoDataset``; the two-stage proposal scorer keeps its channel 0 (the official
class-agnostic objectness). The official input projections have conv biases, mmdet's ``ChannelMapper`` does not by
default: the model needs ``neck.bias=True``.
"""
import argparse
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, Tuple

import torch

from .common import coco_class_rows, rename

ENCODER_LAYER = {'norm1': 'norms.0', 'norm2': 'norms.1', 'linear1': 'ffn.layers.0.0', 'linear2': 'ffn.layers.1'}
DECODER_LAYER = {
    'norm2': 'norms.0', 'norm1': 'norms.1', 'norm3': 'norms.2', 'linear1': 'ffn.layers.0.0', 'linear2': 'ffn.layers.1',
    'self_attn.in_proj_weight': 'self_attn.attn.in_proj_weight',
    'self_attn.in_proj_bias': 'self_attn.attn.in_proj_bias', 'self_attn.out_proj': 'self_attn.attn.out_proj'
}
TRANSFORMER = {
    'level_embed': 'level_embed', 'reference_points': 'reference_points_fc', 'enc_output_norm': 'memory_trans_norm',
    'enc_output': 'memory_trans_fc', 'pos_trans_norm': 'pos_trans_norm', 'pos_trans': 'pos_trans_fc'
}


def read_official_checkpoint(path: str) -> Dict[str, torch.Tensor]:
    """The state dict (``model`` entry) of an official checkpoint file, weights-only (its ``args`` namespace
    allowed); ``ValueError`` naming the file if it is absent or holds none."""
    if not osp.isfile(path):
        raise ValueError(f'{path}: no such file')
    with torch.serialization.safe_globals([argparse.Namespace]):  # the official checkpoints store their args
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    state_dict = checkpoint.get('model', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict):
        raise ValueError(f'{path} holds no state dict (expected a dict with a "model" entry)')
    return state_dict


def detect_variant(state_dict: Dict[str, torch.Tensor]) -> Dict[str, object]:
    """Levels, refinement and two-stage flags of an official state dict, from its keys."""
    levels = {int(m.group(1)) for k in state_dict for m in [re.match(r'input_proj\.(\d+)\.', k)] if m}
    if not levels or 'class_embed.0.weight' not in state_dict:
        raise ValueError('not an official Deformable DETR state dict: expected keys input_proj.<l>.* and '
                         'class_embed.0.weight')
    return dict(num_feature_levels=len(levels),
                with_box_refine=any(k.startswith('transformer.decoder.bbox_embed.') for k in state_dict),
                as_two_stage='transformer.enc_output.weight' in state_dict)


def official_to_mmddetr(state_dict: Dict[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], Dict[str, object]]:
    """Official state dict → (mmddetr / mmdet state dict, detected variant)."""
    variant = detect_variant(state_dict)
    num_backbone_levels = sum(1 for k in state_dict if re.fullmatch(r'input_proj\.\d+\.0\.weight', k)
                              and state_dict[k].shape[-1] == 1)
    num_dec_layers = 1 + max(int(m.group(1)) for k in state_dict
                             for m in [re.match(r'transformer\.decoder\.layers\.(\d+)\.', k)] if m)
    converted = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith(('transformer.decoder.bbox_embed.', 'transformer.decoder.class_embed.')):
            continue  # aliases of the top-level class_embed / bbox_embed
        if key.startswith('backbone.0.body.'):
            new = 'backbone.' + key[len('backbone.0.body.'):]
            if new.endswith('.running_var'):
                converted[new[:-len('running_var')] + 'num_batches_tracked'] = torch.tensor(0)
        elif m := re.match(r'input_proj\.(\d+)\.([01])\.(.+)', key):
            lvl, part, param = int(m.group(1)), m.group(2), m.group(3)
            module = 'conv' if part == '0' else 'gn'
            new = (f'neck.convs.{lvl}.{module}.{param}' if lvl < num_backbone_levels else
                   f'neck.extra_convs.{lvl - num_backbone_levels}.{module}.{param}')
        elif m := re.match(r'transformer\.encoder\.layers\.(\d+)\.(.+)', key):
            new = f'encoder.layers.{m.group(1)}.{rename(m.group(2), ENCODER_LAYER)}'
        elif m := re.match(r'transformer\.decoder\.layers\.(\d+)\.(.+)', key):
            new = f'decoder.layers.{m.group(1)}.{rename(m.group(2), DECODER_LAYER)}'
        elif key.startswith('transformer.'):
            new = rename(key[len('transformer.'):], TRANSFORMER)
        elif m := re.match(r'class_embed\.(\d+)\.(weight|bias)', key):
            layer = int(m.group(1))
            rows = coco_class_rows(proposal_scorer=layer == num_dec_layers)
            new, value = f'bbox_head.cls_branches.{layer}.{m.group(2)}', value[rows].clone()
        elif m := re.match(r'bbox_embed\.(\d+)\.layers\.(\d+)\.(weight|bias)', key):
            new = f'bbox_head.reg_branches.{m.group(1)}.{2 * int(m.group(2))}.{m.group(3)}'
        elif key == 'query_embed.weight':
            new = 'query_embedding.weight'
        else:
            raise ValueError(f'unexpected key in the official checkpoint: {key}')
        converted[new] = value
    return converted, variant
