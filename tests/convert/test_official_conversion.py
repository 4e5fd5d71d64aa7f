"""The official-checkpoint conversion on random state dicts of the official layout (no network here): the official
model's keys, shapes and shared tensors, frozen in official_deformable_detr_keys.json from the official code."""
import argparse
import importlib.util
import json
import os
import re

import pytest
import torch

from mmddetr.convert import official_to_mmddetr

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location('convert_checkpoint', os.path.join(HERE, '..', '..', 'tools',
                                                                                 'convert_checkpoint.py'))
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)

# The official model's state dict keys, shapes and shared tensors per variant, frozen from the official code's module
# names (fundamentalvision/Deformable-DETR; the file's "source" says which commit and files)
OFFICIAL_KEYS = os.path.join(HERE, 'official_deformable_detr_keys.json')


def official_state_dict(variant: str, seed: int = 0) -> dict:
    """A random state dict of the official DeformableDETR ``variant``: exactly its keys and shapes, in its order, an
    alias holding the very tensor of the key it aliases (as the official model saves its shared heads)."""
    with open(OFFICIAL_KEYS) as f:
        layout = json.load(f)['variants'][variant]
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in layout['keys']:
        alias_of = layout['aliases'].get(key)
        sd[key] = sd[alias_of] if alias_of else torch.randn(shape, generator=gen)
    return sd


@pytest.mark.parametrize('variant,config,levels,refine,two_stage', [
    ('plain', 'deformable_detr_r50.py', 4, False, False),
    ('refine', 'deformable_detr_r50_refine.py', 4, True, False),
    ('refine_twostage', 'deformable_detr_r50_refine_twostage.py', 4, True, True),
    ('single_scale', 'deformable_detr_r50_single_scale.py', 1, False, False),
])
def test_converted_checkpoint_loads_strictly(variant, config, levels, refine, two_stage, build_detector):
    official = official_state_dict(variant)
    converted, detected = official_to_mmddetr(official)
    assert detected == dict(num_feature_levels=levels, with_box_refine=refine, as_two_stage=two_stage)
    model = build_detector('configs/' + config, neck=dict(bias=True))
    model.load_state_dict(converted, strict=True)
    # every official weight is in the converted checkpoint (the class layers as rows of it, checked below)
    kept = {id(value) for value in converted.values()}
    dropped = [key for key, value in official.items() if not key.startswith(('class_embed.',
               'transformer.decoder.class_embed.')) and id(value) not in kept]
    assert not dropped, dropped[:5]
    sd = model.state_dict()
    for ours, theirs in (
            ('backbone.bn1.weight', 'backbone.0.body.bn1.weight'),
            ('backbone.layer3.0.downsample.1.running_var', 'backbone.0.body.layer3.0.downsample.1.running_var'),
            ('level_embed', 'transformer.level_embed'),
            ('encoder.layers.5.self_attn.sampling_offsets.weight',
             'transformer.encoder.layers.5.self_attn.sampling_offsets.weight'),
            ('encoder.layers.2.ffn.layers.1.weight', 'transformer.encoder.layers.2.linear2.weight'),
            # decoder norms: official norm2 follows self-attention, norm1 cross-attention
            ('decoder.layers.3.norms.0.weight', 'transformer.decoder.layers.3.norm2.weight'),
            ('decoder.layers.3.norms.1.weight', 'transformer.decoder.layers.3.norm1.weight'),
            ('decoder.layers.3.norms.2.bias', 'transformer.decoder.layers.3.norm3.bias'),
            ('decoder.layers.0.self_attn.attn.in_proj_weight', 'transformer.decoder.layers.0.self_attn.in_proj_weight'),
            ('decoder.layers.4.cross_attn.attention_weights.bias',
             'transformer.decoder.layers.4.cross_attn.attention_weights.bias'),
            ('bbox_head.reg_branches.1.4.weight', 'bbox_embed.1.layers.2.weight'),
            ('neck.convs.0.conv.bias', 'input_proj.0.0.bias')):
        assert torch.equal(sd[ours], official[theirs]), ours
    # classes: ours 0 = person (id 1), 11 = stop sign (id 13), 79 = toothbrush (id 90)
    for cls, cat_id in ((0, 1), (11, 13), (79, 90)):
        assert torch.equal(sd['bbox_head.cls_branches.0.weight'][cls], official['class_embed.0.weight'][cat_id])
        assert torch.equal(sd['bbox_head.cls_branches.5.bias'][cls], official['class_embed.5.bias'][cat_id])
    if two_stage:  # the proposal scorer ranks by channel 0, the official objectness row
        assert torch.equal(sd['bbox_head.cls_branches.6.bias'][0], official['class_embed.6.bias'][0])
        assert torch.equal(sd['pos_trans_fc.weight'], official['transformer.pos_trans.weight'])
        assert torch.equal(sd['memory_trans_norm.bias'], official['transformer.enc_output_norm.bias'])
    else:
        assert torch.equal(sd['query_embedding.weight'], official['query_embed.weight'])
        assert torch.equal(sd['reference_points_fc.weight'], official['transformer.reference_points.weight'])
    if levels == 4:
        assert torch.equal(sd['neck.extra_convs.0.gn.weight'], official['input_proj.3.1.weight'])
        assert torch.equal(sd['neck.convs.2.conv.weight'], official['input_proj.2.0.weight'])


def test_tool_picks_the_variants_config_and_writes_a_config_that_loads_it(tmp_path, capsys):
    """--from official: the checkpoint and a config beside it that inherits the variant's shipped config with the
    official conv biases (checked to load the checkpoint strictly); COCO's classes in the meta; never overwritten."""
    from mmddetr.engine import load_detector
    for levels, refine, two_stage, name in ((4, False, False, 'deformable_detr_r50.py'),
                                            (4, True, False, 'deformable_detr_r50_refine.py'),
                                            (4, True, True, 'deformable_detr_r50_refine_twostage.py'),
                                            (1, False, False, 'deformable_detr_r50_single_scale.py')):
        assert tool.shipped_config(levels, refine, two_stage) == os.path.join(tool.CONFIGS, name)
    src, dst = tmp_path / 'official.pth', tmp_path / 'out' / 'converted.pth'
    torch.save(dict(model=official_state_dict('refine_twostage'), args=argparse.Namespace(lr=2e-4)), src)
    tool.main(['--from', 'official', '--to', 'mmddetr', str(src), str(dst)])
    config = tmp_path / 'out' / 'converted.py'
    assert f'python tools/test.py {config} {dst}\n' in capsys.readouterr().out
    text = config.read_text()
    assert f"_base_ = '{tool.CONFIGS}/deformable_detr_r50_refine_twostage.py'" in text  # other trees: absolute
    assert 'neck=dict(bias=True)' in text and 'metainfo' not in text
    model = load_detector(str(config), str(dst))
    assert model.as_two_stage and model.dataset_meta['classes'][79] == 'toothbrush'
    assert torch.load(dst, weights_only=True)['meta']['variant']['as_two_stage']
    before = dst.read_bytes(), text
    with pytest.raises(SystemExit, match=re.escape(f'error: {dst} exists; choose a new path')):
        tool.main(['--from', 'official', '--to', 'mmddetr', str(src), str(dst)])
    assert (dst.read_bytes(), config.read_text()) == before
    dst.unlink()  # the config alone blocks too
    with pytest.raises(SystemExit, match=re.escape(f'error: {config} exists; choose a new path')):
        tool.main(['--from', 'official', '--to', 'mmddetr', str(src), str(dst)])
    assert not dst.exists() and config.read_text() == text
    with pytest.raises(SystemExit, match=re.escape(f'error: {tmp_path / "none.pth"}: no such file')):
        tool.main(['--from', 'official', '--to', 'mmddetr', str(tmp_path / 'none.pth'), str(dst)])


def test_official_checkpoint_to_hugging_face(tmp_path):
    """An official checkpoint (no Hugging Face meta) goes on to a Hugging Face directory (checked by the tool to load
    cleanly in transformers) with its 80 COCO classes as ``id2label``."""
    pytest.importorskip('transformers')
    from mmdet.datasets import CocoDataset
    torch.save(dict(model=official_state_dict('refine')), tmp_path / 'official.pth')
    tool.main(['--from', 'official', '--to', 'mmddetr', str(tmp_path / 'official.pth'), str(tmp_path / 'ours.pth')])
    tool.main(['--from', 'mmddetr', '--to', 'hf', str(tmp_path / 'ours.pth'), str(tmp_path / 'hf'), '--config',
               str(tmp_path / 'ours.py')])
    with open(tmp_path / 'hf' / 'config.json') as f:
        config = json.load(f)
    assert config['id2label'] == {str(i): name for i, name in enumerate(CocoDataset.METAINFO['classes'])}
    assert config['with_box_refine'] and config['decoder_layers'] == 6 and config['num_queries'] == 300


def test_rejects_other_state_dicts():
    with pytest.raises(ValueError, match='not an official Deformable DETR state dict'):
        official_to_mmddetr({'backbone.conv1.weight': torch.zeros(1)})
