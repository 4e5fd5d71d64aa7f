"""Hugging Face ``DeformableDetrForObjectDetection`` checkpoints ↔ mmddetr's (mmdet's) state dicts.

A Hugging Face model directory holds ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``). Read: the
hub's files (transformers 4.x names, a timm ResNet-50 backbone: ``model.backbone.conv_encoder.model.conv1.weight``,
torchvision's names) and what transformers 5.x's ``save_pretrained`` writes (the same names, which 5.x renames on
load, around transformers' own ResNet: ``...conv_encoder.model.embedder.embedder.convolution.weight``). Written: the
latter, so the directory loads without timm.

Class rows: the hub's COCO models have 91 rows indexed by category id, "N/A" at the 11 ids that name no class; they
become mmdet's 80 ``CocoDataset`` classes as in the official converter (:func:`~mmddetr.convert.common.coco_class_rows`)
and the rows dropped are kept in the checkpoint's meta, so the way back restores them. Other ``id2label`` sets are
taken as they are.

Prediction heads: transformers 5.x ties (shares) head modules the way :func:`head_ties` lists; a file holds only the
source of a tie whose target has the same values (what ``save_pretrained`` writes), both when they differ. Our model
shares its heads across decoder layers without box refinement, and always uses one box branch for refinement and
prediction; a file whose heads differ where ours are shared is refused.

transformers is imported only to write a directory (:func:`write_hf_dir`); reading needs torch and safetensors.
"""
import json
import os
import os.path as osp
import re
import shutil
import tempfile
from typing import Dict, Optional, Tuple

import torch

from .common import COCO_CATEGORY_IDS, COCO_NUM_ROWS, coco_class_rows, other_rows, rename

INSTALL_HINT = 'install it with `pip install -e ".[hf]"` or `bash tools/install.sh`'
WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')

# Hugging Face names as transformers writes them (5.x renames fc1 → mlp.fc1, self_attn.out_proj → self_attn.o_proj and
# backbone.conv_encoder → backbone on load) → mmdet's
TOP_LEVEL = {
    'model.level_embed': 'level_embed', 'model.query_position_embeddings': 'query_embedding',
    'model.reference_points': 'reference_points_fc', 'model.enc_output_norm': 'memory_trans_norm',
    'model.enc_output': 'memory_trans_fc', 'model.pos_trans_norm': 'pos_trans_norm', 'model.pos_trans': 'pos_trans_fc'
}
ENCODER_LAYER = {'self_attn_layer_norm': 'norms.0', 'final_layer_norm': 'norms.1', 'fc1': 'ffn.layers.0.0',
                 'fc2': 'ffn.layers.1'}
DECODER_LAYER = {
    'self_attn.in_proj_weight': 'self_attn.attn.in_proj_weight',
    'self_attn.in_proj_bias': 'self_attn.attn.in_proj_bias', 'self_attn.out_proj': 'self_attn.attn.out_proj',
    'self_attn_layer_norm': 'norms.0', 'encoder_attn': 'cross_attn', 'encoder_attn_layer_norm': 'norms.1',
    'final_layer_norm': 'norms.2', 'fc1': 'ffn.layers.0.0', 'fc2': 'ffn.layers.1'
}
BACKBONE = 'model.backbone.conv_encoder.model.'
# transformers' ResNet bottleneck (its part, conv or norm) → torchvision's (mmdet's ResNet, timm's); the stem is
# embedder.embedder → conv1 / bn1
RESNET_PARTS = {
    ('layer.0', 'convolution'): 'conv1', ('layer.0', 'normalization'): 'bn1',
    ('layer.1', 'convolution'): 'conv2', ('layer.1', 'normalization'): 'bn2',
    ('layer.2', 'convolution'): 'conv3', ('layer.2', 'normalization'): 'bn3',
    ('shortcut', 'convolution'): 'downsample.0', ('shortcut', 'normalization'): 'downsample.1'
}
HEAD_PARAMS = {'class_embed': ('weight', 'bias'),
               'bbox_embed': tuple(f'layers.{j}.{p}' for j in range(3) for p in ('weight', 'bias'))}
# The architecture settings carried over, with transformers' defaults (the paper's, as the shipped configs)
ARCH_DEFAULTS = dict(encoder_layers=6, decoder_layers=6, encoder_ffn_dim=1024, decoder_ffn_dim=1024,
                     encoder_attention_heads=8, decoder_attention_heads=8, encoder_n_points=4, decoder_n_points=4)
NO_CLASS = 'N/A'


class HFCheckpointError(ValueError):
    """A Hugging Face directory or checkpoint that cannot be converted, or a failed conversion to one."""


def resnet_to_torchvision(name: str) -> Optional[str]:
    """A parameter name of transformers' ResNet (below its ``model.``) → torchvision's, None if it is none."""
    if m := re.fullmatch(r'embedder\.embedder\.(convolution|normalization)\.(\w+)', name):
        return ('conv1.' if m[1] == 'convolution' else 'bn1.') + m[2]
    if m := re.fullmatch(r'encoder\.stages\.(\d+)\.layers\.(\d+)\.(shortcut|layer\.\d)\.(convolution|normalization)'
                         r'\.(\w+)', name):
        part = RESNET_PARTS.get((m[3], m[4]))
        return part and f'layer{int(m[1]) + 1}.{m[2]}.{part}.{m[5]}'
    return None


def torchvision_to_resnet(name: str) -> str:
    """The inverse of :func:`resnet_to_torchvision`."""
    if m := re.fullmatch(r'(conv1|bn1)\.(\w+)', name):
        return f'embedder.embedder.{"convolution" if m[1] == "conv1" else "normalization"}.{m[2]}'
    m = re.fullmatch(r'layer(\d+)\.(\d+)\.(conv\d|bn\d|downsample\.[01])\.(\w+)', name)
    if not m:
        raise HFCheckpointError(f'backbone.{name}: not a parameter of a ResNet-50')
    (part, kind), = [key for key, value in RESNET_PARTS.items() if value == m[3]]
    return f'encoder.stages.{int(m[1]) - 1}.layers.{m[2]}.{part}.{kind}.{m[4]}'


def backbone_is_resnet50(config: dict) -> bool:
    """Whether ``config.json`` describes the ResNet-50 backbone (transformers' or timm's) without dilation."""
    backbone = config.get('backbone_config')
    if config.get('dilation'):
        return False
    if backbone is None:  # transformers 4.x: timm's resnet50 unless use_timm_backbone is off (then ResNetConfig())
        return not config.get('use_timm_backbone', True) or config.get('backbone') in (None, 'resnet50')
    if backbone.get('model_type') == 'timm_backbone':
        return backbone.get('backbone') == 'resnet50' and backbone.get('output_stride') in (None, 32)
    return (backbone.get('model_type') == 'resnet' and backbone.get('depths', [3, 4, 6, 3]) == [3, 4, 6, 3]
            and backbone.get('layer_type', 'bottleneck') == 'bottleneck'
            and not backbone.get('downsample_in_bottleneck', False))


def architecture(config: dict) -> dict:
    """The settings of a ``config.json`` that the conversion keeps, checked to be ones mmddetr's configs express.

    Returns:
        dict: ``num_feature_levels``, ``with_box_refine``, ``two_stage``, ``num_queries`` (the decoder's queries:
        ``two_stage_num_proposals`` in two-stage models), ``tie_word_embeddings`` and the ``ARCH_DEFAULTS`` keys
        (layers, FFN widths, heads, points).
    """
    problems = []
    for key, expected in (('d_model', 256), ('activation_function', 'relu'), ('position_embedding_type', 'sine')):
        if config.get(key, expected) != expected:
            problems.append(f'{key} {config[key]!r} (mmddetr\'s configs: {expected!r})')
    if config.get('num_feature_levels', 4) not in (1, 4):
        problems.append(f'num_feature_levels {config["num_feature_levels"]} (mmddetr\'s configs: 1 or 4)')
    if not backbone_is_resnet50(config):
        problems.append('a backbone other than ResNet-50 without dilation')
    if config.get('two_stage') and not config.get('with_box_refine'):
        problems.append('two_stage without with_box_refine')
    if 'id2label' not in config:
        problems.append('no id2label')
    if problems:
        raise HFCheckpointError(f'config.json: unsupported {"; ".join(problems)}')
    two_stage = bool(config.get('two_stage', False))
    return dict(num_feature_levels=config.get('num_feature_levels', 4),
                with_box_refine=bool(config.get('with_box_refine', False)), two_stage=two_stage,
                num_queries=config.get('two_stage_num_proposals', 300) if two_stage else config.get('num_queries', 300),
                tie_word_embeddings=config.get('tie_word_embeddings', True),
                **{key: config.get(key, default) for key, default in ARCH_DEFAULTS.items()})


def coco_rows_with_gaps(id2label: Dict) -> bool:
    """Whether ``id2label`` is the hub's COCO layout: 91 rows, "N/A" exactly at the ids no COCO class has."""
    labels = {int(i): name for i, name in id2label.items()}
    return (len(labels) == COCO_NUM_ROWS and
            {i for i, name in labels.items() if name == NO_CLASS} == set(other_rows(COCO_CATEGORY_IDS)))


def class_names(config: dict) -> Tuple[str, ...]:
    """Class names of a ``config.json`` in mmddetr's class order (COCO rows with gaps: the 80 named rows)."""
    labels = {int(i): name for i, name in config['id2label'].items()}
    ids = COCO_CATEGORY_IDS if coco_rows_with_gaps(labels) else sorted(labels)
    return tuple(labels[i] for i in ids)


def num_pred(arch: dict) -> int:
    """Prediction heads of each kind: one per decoder layer, and the proposal scorer in two-stage models."""
    return arch['decoder_layers'] + int(arch['two_stage'])


def _has_decoder_copy(head: str, arch: dict) -> bool:
    """Whether the Hugging Face decoder holds a copy of every ``head`` (``class_embed`` or ``bbox_embed``):
    two-stage models score proposals with the last class head, refinement refines with the box heads."""
    return arch['two_stage'] or (head == 'bbox_embed' and arch['with_box_refine'])


def _top_level(module: str) -> str:
    return module.replace('model.decoder.', '')


def _params(module: str) -> Tuple[str, ...]:
    return HEAD_PARAMS[module.split('.')[-2]]


def head_ties(arch: dict) -> Dict[str, str]:
    """transformers 5.x's ties among the prediction heads of ``DeformableDetrForObjectDetection`` for this variant
    (``_tied_weights_keys`` expanded, per module): target → source. Without a decoder copy every layer's head is the
    first one's; with one, the top-level head is the decoder's copy. None when ``tie_word_embeddings`` is off."""
    if not arch['tie_word_embeddings']:
        return {}
    ties = {}
    for head in HEAD_PARAMS:
        for i in range(num_pred(arch)):
            if _has_decoder_copy(head, arch):
                ties[f'{head}.{i}'] = f'model.decoder.{head}.{i}'
            elif i:
                ties[f'{head}.{i}'] = f'{head}.0'
    return ties


def head_modules(arch: dict) -> Dict[str, str]:
    """Every prediction-head module of the Hugging Face model → the top-level head whose weights it has in mmddetr's
    model: the first layer's without box refinement (one branch for all layers), the same layer's for the decoder's
    copies (one branch for refinement, proposals and prediction)."""
    modules = {}
    for head in HEAD_PARAMS:
        for i in range(num_pred(arch)):
            modules[f'{head}.{i}'] = f'{head}.{i if arch["with_box_refine"] else 0}'
            if _has_decoder_copy(head, arch):
                modules[f'model.decoder.{head}.{i}'] = f'{head}.{i}'
    return modules


def split_heads(state_dict: Dict[str, torch.Tensor], arch: dict) -> Dict[str, torch.Tensor]:
    """The top-level prediction heads (``class_embed.i.*``, ``bbox_embed.i.*``) of a file's state dict: a tied module
    the file leaves out takes its tie partner's weights (as transformers does), and every head module must have the
    weights of the one it shares in mmddetr's model (:func:`head_modules`). The heads' keys are removed from
    ``state_dict``."""
    ties, modules = head_ties(arch), head_modules(arch)

    def value(module: str, param: str) -> torch.Tensor:
        source = ties.get(module, module)
        for partner in [module, source, *(target for target, s in ties.items() if s == source)]:
            if f'{partner}.{param}' in state_dict:
                return state_dict[f'{partner}.{param}']
        raise HFCheckpointError(f'the checkpoint has no {module}.{param} (nor a head tied to it)')

    heads = {f'{module}.{param}': value(module, param) for module in modules if module == _top_level(module)
             for param in _params(module)}
    for module, shared in modules.items():
        for param in _params(module):
            if not torch.equal(value(module, param), heads[f'{shared}.{param}']):
                raise HFCheckpointError(f'{module}.{param} differs from {shared}.{param}: mmddetr\'s model has one '
                                        f'branch for both ({"with" if arch["with_box_refine"] else "without"} box '
                                        'refinement)')
    for module in modules:
        for param in _params(module):
            state_dict.pop(f'{module}.{param}', None)
    return heads


def tie_heads(heads: Dict[str, torch.Tensor], arch: dict) -> Dict[str, torch.Tensor]:
    """The inverse of :func:`split_heads`: every head module of the Hugging Face model, less the tie targets whose
    weights equal their sources' (what ``save_pretrained`` writes)."""
    ties, kept = head_ties(arch), {}
    for module in head_modules(arch):
        source = ties.get(module)
        for param in _params(module):
            value = heads[f'{_top_level(module)}.{param}']
            if source is None or not torch.equal(value, heads[f'{_top_level(source)}.{param}']):
                kept[f'{module}.{param}'] = value
    return kept


def _backbone_levels(num_feature_levels: int) -> int:
    """Levels that come from the backbone (C5, or C3-C5); the others from stride-2 convolutions after it."""
    return 1 if num_feature_levels == 1 else 3


def _neck(level: int, num_feature_levels: int) -> str:
    num_backbone = _backbone_levels(num_feature_levels)
    return f'neck.convs.{level}' if level < num_backbone else f'neck.extra_convs.{level - num_backbone}'


def hf_to_mmddetr(config: dict, state_dict: Dict[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], dict]:
    """A Hugging Face ``config.json`` and state dict (file names) → mmddetr / mmdet state dict and the meta that
    records the source (``hf``: its config and the class rows dropped).

    Raises:
        HFCheckpointError: unsupported settings, keys that are missing or unknown, heads that mmddetr cannot share.
    """
    arch = architecture(config)
    state_dict = dict(state_dict)
    heads = split_heads(state_dict, arch)
    coco = coco_rows_with_gaps(config['id2label'])
    converted, dropped = {}, {}
    for i in range(num_pred(arch)):
        rows = coco_class_rows(proposal_scorer=arch['two_stage'] and i == num_pred(arch) - 1)
        for param in HEAD_PARAMS['class_embed']:
            value = heads[f'class_embed.{i}.{param}']
            if coco:
                dropped[f'class_embed.{i}.{param}'] = value[other_rows(rows)].clone()
                value = value[rows].clone()
            converted[f'bbox_head.cls_branches.{i}.{param}'] = value
        for j in range(3):
            for param in ('weight', 'bias'):
                converted[f'bbox_head.reg_branches.{i}.{2 * j}.{param}'] = heads[f'bbox_embed.{i}.layers.{j}.{param}']
    for i in range(arch['decoder_layers']):  # q, k, v projections → one in_proj as torch's MultiheadAttention
        for param in ('weight', 'bias'):
            parts = [state_dict.pop(f'model.decoder.layers.{i}.self_attn.{p}_proj.{param}', None) for p in 'qkv']
            if any(part is None for part in parts):
                raise HFCheckpointError(f'the checkpoint has no model.decoder.layers.{i}.self_attn.q/k/v_proj.{param}')
            state_dict[f'model.decoder.layers.{i}.self_attn.in_proj_{param}'] = torch.cat(parts)
    unknown = []
    for key, value in state_dict.items():
        if key.startswith(BACKBONE):
            name = key[len(BACKBONE):]
            if name.endswith('num_batches_tracked'):  # some hub files have them; transformers ignores them too
                continue
            new = 'backbone.' + (resnet_to_torchvision(name) or name)  # timm's names are torchvision's
            if new.endswith('.running_var'):  # mmdet's BatchNorm counts batches; frozen, it never does
                converted[new[:-len('running_var')] + 'num_batches_tracked'] = torch.tensor(0)
        elif m := re.fullmatch(r'model\.input_proj\.(\d+)\.([01])\.(weight|bias)', key):
            new = f'{_neck(int(m[1]), arch["num_feature_levels"])}.{"conv" if m[2] == "0" else "gn"}.{m[3]}'
        elif m := re.fullmatch(r'model\.encoder\.layers\.(\d+)\.(.+)', key):
            new = f'encoder.layers.{m[1]}.{rename(m[2], ENCODER_LAYER)}'
        elif m := re.fullmatch(r'model\.decoder\.layers\.(\d+)\.(.+)', key):
            new = f'decoder.layers.{m[1]}.{rename(m[2], DECODER_LAYER)}'
        elif (new := rename(key, TOP_LEVEL)) == key:
            unknown.append(key)
            continue
        converted[new] = value
    if unknown:
        raise HFCheckpointError(f'{len(unknown)} keys of the checkpoint are not Deformable DETR weights '
                                f'(first: {", ".join(unknown[:5])})')
    return converted, dict(hf=dict(config=config, dropped_class_rows=dropped))


def mmddetr_to_hf(state_dict: Dict[str, torch.Tensor], arch: dict, classes: Tuple[str, ...],
                  hf_meta: Optional[dict] = None) -> Tuple[dict, Dict[str, torch.Tensor]]:
    """mmddetr / mmdet state dict → Hugging Face ``config.json`` (as a dict) and state dict (file names).

    Args:
        state_dict (dict): The detector's, with mmdet's names.
        arch (dict): Its settings (:func:`arch_of`).
        classes (tuple[str]): Its class names.
        hf_meta (dict, optional): The ``hf`` entry of the meta of a checkpoint converted from Hugging Face: its
            config.json is the base of the one written and, for COCO rows with gaps, the rows dropped are restored.

    Returns:
        tuple[dict, dict]: ``config.json`` and the state dict, every tensor a contiguous tensor of its own.
    """
    num_classes = state_dict['bbox_head.cls_branches.0.weight'].shape[0]
    if len(classes) != num_classes:
        raise HFCheckpointError(f'{len(classes)} class names for the {num_classes} classes of the model: the '
                                'checkpoint\'s meta must name them (dataset_meta.classes)')
    base = dict(hf_meta['config']) if hf_meta else {}
    arch = dict(arch, tie_word_embeddings=base.get('tie_word_embeddings', True))
    coco = bool(hf_meta) and coco_rows_with_gaps(base.get('id2label', {})) and len(classes) == len(COCO_CATEGORY_IDS)
    heads = {}
    for i in range(num_pred(arch)):
        rows = coco_class_rows(proposal_scorer=arch['two_stage'] and i == num_pred(arch) - 1)
        for param in HEAD_PARAMS['class_embed']:
            value = state_dict[f'bbox_head.cls_branches.{i}.{param}']
            if coco:
                full = value.new_empty((COCO_NUM_ROWS, ) + value.shape[1:])
                full[rows] = value
                full[other_rows(rows)] = hf_meta['dropped_class_rows'][f'class_embed.{i}.{param}']
                value = full
            heads[f'class_embed.{i}.{param}'] = value
        for j in range(3):
            for param in ('weight', 'bias'):
                heads[f'bbox_embed.{i}.layers.{j}.{param}'] = state_dict[f'bbox_head.reg_branches.{i}.{2 * j}.{param}']
    converted = dict(tie_heads(heads, arch))
    encoder, decoder, top = ({v: k for k, v in table.items()} for table in (ENCODER_LAYER, DECODER_LAYER, TOP_LEVEL))
    for key, value in state_dict.items():
        if key.startswith('bbox_head.') or key.endswith('num_batches_tracked'):
            continue
        if key.startswith('backbone.'):
            new = BACKBONE + torchvision_to_resnet(key[len('backbone.'):])
        elif m := re.fullmatch(r'neck\.(convs|extra_convs)\.(\d+)\.(conv|gn)\.(weight|bias)', key):
            level = int(m[2]) + (0 if m[1] == 'convs' else _backbone_levels(arch['num_feature_levels']))
            new = f'model.input_proj.{level}.{0 if m[3] == "conv" else 1}.{m[4]}'
        elif m := re.fullmatch(r'encoder\.layers\.(\d+)\.(.+)', key):
            new = f'model.encoder.layers.{m[1]}.{rename(m[2], encoder)}'
        elif m := re.fullmatch(r'decoder\.layers\.(\d+)\.self_attn\.attn\.in_proj_(weight|bias)', key):
            for p, part in zip('qkv', value.chunk(3)):
                converted[f'model.decoder.layers.{m[1]}.self_attn.{p}_proj.{m[2]}'] = part
            continue
        elif m := re.fullmatch(r'decoder\.layers\.(\d+)\.(.+)', key):
            new = f'model.decoder.layers.{m[1]}.{rename(m[2], decoder)}'
        elif (new := rename(key, top)) == key:
            raise HFCheckpointError(f'{key}: no Hugging Face Deformable DETR weight has it')
        converted[new] = value
    for level in range(arch['num_feature_levels']):  # mmdet's ChannelMapper has no conv biases by default
        converted.setdefault(f'model.input_proj.{level}.0.bias', converted[f'model.input_proj.{level}.1.bias'] * 0)
    base = base if coco else {key: value for key, value in base.items() if key not in ('id2label', 'label2id')}
    tensors = {key: value.detach().clone().contiguous() for key, value in converted.items()}  # none shares memory
    return hf_config(arch, classes, base), tensors


def hf_config(arch: dict, classes: Tuple[str, ...], base: dict) -> dict:
    """``config.json`` of ``arch`` on the backbone of transformers' ResNet-50, over ``base`` (a source config.json,
    whose backbone settings are replaced unless it is transformers' ResNet-50 already); ``id2label`` from ``classes``
    unless ``base`` has one."""
    config = {key: value for key, value in base.items()
              if key not in ('use_timm_backbone', 'backbone', 'use_pretrained_backbone', 'backbone_kwargs')}
    if (config.get('backbone_config') or {}).get('model_type') != 'resnet':
        out_features = ['stage2', 'stage3', 'stage4'][-_backbone_levels(arch['num_feature_levels']):]
        config['backbone_config'] = dict(model_type='resnet', depths=[3, 4, 6, 3], out_features=out_features)
    config.setdefault('id2label', {str(i): name for i, name in enumerate(classes)})
    config.setdefault('label2id', {name: int(i) for i, name in config['id2label'].items()})
    config.update(model_type='deformable_detr', architectures=['DeformableDetrForObjectDetection'],
                  num_feature_levels=arch['num_feature_levels'], with_box_refine=arch['with_box_refine'],
                  two_stage=arch['two_stage'], tie_word_embeddings=arch['tie_word_embeddings'],
                  **{key: arch[key] for key in ARCH_DEFAULTS})
    config['two_stage_num_proposals' if arch['two_stage'] else 'num_queries'] = arch['num_queries']
    return config


def arch_of(model) -> dict:
    """The :func:`architecture` settings (but ``tie_word_embeddings``) of an mmddetr or mmdet Deformable DETR
    detector, checked to be ones transformers' ``DeformableDetrConfig`` expresses."""
    pe, backbone = model.positional_encoding, model.backbone
    enc, dec = model.encoder.layers[0], model.decoder.layers[0]
    expressed = {
        'a backbone other than ResNet-50 (pytorch style)': (getattr(backbone, 'depth', None),
                                                            getattr(backbone, 'style', None)) == (50, 'pytorch'),
        'embed dims other than 256': model.embed_dims == 256,
        'a position encoding other than the normalised sine one with offset -0.5': (
            getattr(pe, 'normalize', None), getattr(pe, 'offset', None)) == (True, -0.5),
        'box branches other than 3 layers': model.bbox_head.num_reg_fcs == 2,
        'num_feature_levels other than 1 or 4': model.num_feature_levels in (1, 4),
        'other heads in the decoder\'s self- and cross-attention': dec.self_attn.num_heads == dec.cross_attn.num_heads,
    }
    problems = [what for what, ok in expressed.items() if not ok]
    if problems:
        raise HFCheckpointError(f'transformers\' DeformableDetr cannot express a detector with {"; ".join(problems)}')
    return dict(num_feature_levels=model.num_feature_levels, with_box_refine=model.with_box_refine,
                two_stage=model.as_two_stage, num_queries=model.num_queries, encoder_layers=len(model.encoder.layers),
                decoder_layers=len(model.decoder.layers), encoder_ffn_dim=enc.ffn.feedforward_channels,
                decoder_ffn_dim=dec.ffn.feedforward_channels, encoder_attention_heads=enc.self_attn.num_heads,
                decoder_attention_heads=dec.cross_attn.num_heads, encoder_n_points=enc.self_attn.num_points,
                decoder_n_points=dec.cross_attn.num_points)


def mmdet_settings(arch: dict, num_classes: int) -> Dict[str, object]:
    """mmddetr config values (dotted keys) of ``arch`` and ``num_classes``; the input projections of Hugging Face's
    model have conv biases, and its post-processing keeps the top 100 detections, or all queries x classes when they
    are fewer."""
    enc, dec = 'model.encoder.layer_cfg.', 'model.decoder.layer_cfg.'
    return {
        'model.num_feature_levels': arch['num_feature_levels'], 'model.with_box_refine': arch['with_box_refine'],
        'model.as_two_stage': arch['two_stage'], 'model.num_queries': arch['num_queries'], 'model.neck.bias': True,
        'model.encoder.num_layers': arch['encoder_layers'], 'model.decoder.num_layers': arch['decoder_layers'],
        enc + 'self_attn_cfg.num_heads': arch['encoder_attention_heads'],
        enc + 'self_attn_cfg.num_points': arch['encoder_n_points'],
        enc + 'ffn_cfg.feedforward_channels': arch['encoder_ffn_dim'],
        dec + 'self_attn_cfg.num_heads': arch['decoder_attention_heads'],
        dec + 'cross_attn_cfg.num_heads': arch['decoder_attention_heads'],
        dec + 'cross_attn_cfg.num_points': arch['decoder_n_points'],
        dec + 'ffn_cfg.feedforward_channels': arch['decoder_ffn_dim'],
        'model.bbox_head.num_classes': num_classes,
        'model.test_cfg.max_per_img': min(100, arch['num_queries'] * num_classes),
    }


def read_hf_dir(path: str) -> Tuple[dict, Dict[str, torch.Tensor]]:
    """``config.json`` and the state dict of a Hugging Face Deformable DETR directory (``model.safetensors`` or
    ``pytorch_model.bin``).

    Raises:
        HFCheckpointError: naming the directory and what is missing or wrong.
    """
    if not osp.isdir(path):
        raise HFCheckpointError(f'{path}: no such directory (expected a Hugging Face model directory)')
    config_file = osp.join(path, 'config.json')
    if not osp.isfile(config_file):
        raise HFCheckpointError(f'{path}: no config.json (expected a Hugging Face model directory)')
    with open(config_file) as f:
        config = json.load(f)
    if config.get('model_type') != 'deformable_detr':
        raise HFCheckpointError(f'{config_file}: model_type is {config.get("model_type")!r}, expected '
                                '\'deformable_detr\'')
    weights = [osp.join(path, name) for name in WEIGHT_FILES if osp.isfile(osp.join(path, name))]
    if not weights:
        raise HFCheckpointError(f'{path}: no {" or ".join(WEIGHT_FILES)} (sharded checkpoints are not read)')
    if weights[0].endswith('.safetensors'):
        try:
            from safetensors.torch import load_file
        except ImportError as e:
            raise HFCheckpointError(f'reading {weights[0]} needs safetensors ({e}); {INSTALL_HINT}') from e
        state_dict = load_file(weights[0])
    else:
        state_dict = torch.load(weights[0], map_location='cpu', weights_only=True)
    return config, state_dict


def write_hf_dir(path: str, config: dict, state_dict: Dict[str, torch.Tensor]) -> None:
    """Write ``config.json`` (through transformers' ``DeformableDetrConfig``) and ``model.safetensors`` into the new
    directory ``path``, and check that ``DeformableDetrForObjectDetection.from_pretrained`` loads it with no missing,
    unexpected or reshaped weights. Nothing is left at ``path`` if anything fails.

    Raises:
        HFCheckpointError: ``path`` exists, transformers is not installed, or the check fails.
    """
    if osp.exists(path):
        raise HFCheckpointError(f'{path} exists; choose a new path (nothing is overwritten)')
    try:
        from safetensors.torch import save_file
        from transformers import DeformableDetrConfig, DeformableDetrForObjectDetection
    except ImportError as e:
        raise HFCheckpointError(f'writing a Hugging Face directory needs transformers ({e}); {INSTALL_HINT}') from e
    parent = osp.dirname(osp.abspath(path))
    os.makedirs(parent, exist_ok=True)
    part = tempfile.mkdtemp(prefix=f'.{osp.basename(path)}.', dir=parent)
    try:
        DeformableDetrConfig.from_dict(config).save_pretrained(part)
        save_file(state_dict, osp.join(part, 'model.safetensors'), metadata={'format': 'pt'})
        # ignore_mismatched_sizes: a reshaped weight is reported in ``info`` with the others, not raised
        _, info = DeformableDetrForObjectDetection.from_pretrained(part, output_loading_info=True,
                                                                   ignore_mismatched_sizes=True)
        problems = {key: sorted(value) for key, value in info.items() if key != 'error_msgs' and value}
        if problems or info.get('error_msgs'):
            raise HFCheckpointError(f'transformers does not load the converted checkpoint cleanly: {problems} '
                                    f'{info.get("error_msgs") or ""}')
        os.rename(part, path)
    finally:
        shutil.rmtree(part, ignore_errors=True)
