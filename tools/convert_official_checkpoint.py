"""Convert a checkpoint of the official Deformable DETR (fundamentalvision/Deformable-DETR) into mmddetr's layout.

    python tools/convert_official_checkpoint.py r50_deformable_detr_plus_iterative_bbox_refinement_plus_plus_two_stage-checkpoint.pth \
        work_dirs/official_twostage.pth

The variant (levels, box refinement, two-stage) is read from the keys. The 91 class logits, indexed by COCO category
id, become the 80 classes of mmdet's ``CocoDataset``; the two-stage proposal scorer keeps its channel 0 (the
official class-agnostic objectness). The official input projections have conv biases, mmdet's ``ChannelMapper``
does not by default: load the result with ``--cfg-options model.neck.bias=True``, as printed at the end.
"""
import argparse
import os
import re
import sys
from collections import OrderedDict
from typing import Dict, Tuple

import torch

# COCO 2017 category ids of mmdet's 80 CocoDataset classes, in class order.
COCO_CATEGORY_IDS = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35,
    36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65,
    67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90
]
ENCODER_LAYER = {'norm1': 'norms.0', 'norm2': 'norms.1', 'linear1': 'ffn.layers.0.0', 'linear2': 'ffn.layers.1'}
DECODER_LAYER = {
    'norm2': 'norms.0', 'norm1': 'norms.1', 'norm3': 'norms.2', 'linear1': 'ffn.layers.0.0', 'linear2': 'ffn.layers.1',
    'self_attn.in_proj_weight': 'self_attn.attn.in_proj_weight', 'self_attn.in_proj_bias': 'self_attn.attn.in_proj_bias',
    'self_attn.out_proj': 'self_attn.attn.out_proj'
}
TRANSFORMER = {
    'level_embed': 'level_embed', 'reference_points': 'reference_points_fc', 'enc_output_norm': 'memory_trans_norm',
    'enc_output': 'memory_trans_fc', 'pos_trans_norm': 'pos_trans_norm', 'pos_trans': 'pos_trans_fc'
}


def _rename(name: str, table: Dict[str, str]) -> str:
    for old, new in table.items():
        if name == old or name.startswith(old + '.'):
            return new + name[len(old):]
    return name


def detect_variant(state_dict: Dict[str, torch.Tensor]) -> Dict[str, object]:
    """Levels, refinement and two-stage flags of an official state dict, from its keys."""
    levels = {int(m.group(1)) for k in state_dict for m in [re.match(r'input_proj\.(\d+)\.', k)] if m}
    if not levels or 'class_embed.0.weight' not in state_dict:
        raise ValueError('not an official Deformable DETR state dict: expected keys input_proj.<l>.* and '
                         'class_embed.0.weight')
    return dict(num_feature_levels=len(levels),
                with_box_refine=any(k.startswith('transformer.decoder.bbox_embed.') for k in state_dict),
                as_two_stage='transformer.enc_output.weight' in state_dict)


def convert(state_dict: Dict[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], Dict[str, object]]:
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
            new = f'encoder.layers.{m.group(1)}.{_rename(m.group(2), ENCODER_LAYER)}'
        elif m := re.match(r'transformer\.decoder\.layers\.(\d+)\.(.+)', key):
            new = f'decoder.layers.{m.group(1)}.{_rename(m.group(2), DECODER_LAYER)}'
        elif key.startswith('transformer.'):
            new = _rename(key[len('transformer.'):], TRANSFORMER)
        elif m := re.match(r'class_embed\.(\d+)\.(weight|bias)', key):
            layer = int(m.group(1))
            rows = [0] + COCO_CATEGORY_IDS[1:] if layer == num_dec_layers else COCO_CATEGORY_IDS
            new, value = f'bbox_head.cls_branches.{layer}.{m.group(2)}', value[rows].clone()
        elif m := re.match(r'bbox_embed\.(\d+)\.layers\.(\d+)\.(weight|bias)', key):
            new = f'bbox_head.reg_branches.{m.group(1)}.{2 * int(m.group(2))}.{m.group(3)}'
        elif key == 'query_embed.weight':
            new = 'query_embedding.weight'
        else:
            raise ValueError(f'unexpected key in the official checkpoint: {key}')
        converted[new] = value
    return converted, variant


def config_for(variant: Dict[str, object]) -> str:
    """The mmddetr config of a detected variant."""
    if variant['num_feature_levels'] == 1:
        return 'configs/deformable_detr_r50_single_scale.py'
    if variant['as_two_stage']:
        return 'configs/deformable_detr_r50_refine_twostage.py'
    return 'configs/deformable_detr_r50_refine.py' if variant['with_box_refine'] else 'configs/deformable_detr_r50.py'


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='official checkpoint (.pth, with a "model" entry)')
    parser.add_argument('dst', help='output checkpoint; must not exist')
    args = parser.parse_args(argv)
    if not os.path.isfile(args.src):
        sys.exit(f'error: src: no such file {args.src}')
    if os.path.exists(args.dst):
        sys.exit(f'error: dst: {args.dst} exists; choose a new path (nothing is overwritten)')
    with torch.serialization.safe_globals([argparse.Namespace]):  # the official checkpoints store their args
        checkpoint = torch.load(args.src, map_location='cpu', weights_only=True)
    state_dict = checkpoint.get('model', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict):
        sys.exit(f'error: src: {args.src} holds no state dict (expected a dict with a "model" entry)')
    converted, variant = convert(state_dict)
    os.makedirs(os.path.dirname(os.path.abspath(args.dst)), exist_ok=True)
    meta = dict(converted_from=os.path.basename(args.src), variant=variant,
                dataset_meta=dict(category_ids=COCO_CATEGORY_IDS))
    tmp = args.dst + '.part'
    torch.save(dict(state_dict=converted, meta=meta), tmp)
    os.replace(tmp, args.dst)
    print(f'wrote {args.dst} ({len(converted)} tensors; variant {variant})')
    print(f'use it with: python tools/test.py {config_for(variant)} {args.dst} --cfg-options model.neck.bias=True')


if __name__ == '__main__':
    main()
