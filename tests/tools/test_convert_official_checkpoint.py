"""The official-checkpoint converter on synthetic state dicts of the official layout (no network here)."""
import argparse
import importlib.util

import pytest
import torch

spec = importlib.util.spec_from_file_location('convert_official_checkpoint', 'tools/convert_official_checkpoint.py')
converter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(converter)

C, FFN, Q = 256, 1024, 300


def _linear(sd, name, out_ch, in_ch, gen):
    sd[name + '.weight'] = torch.randn(out_ch, in_ch, generator=gen)
    sd[name + '.bias'] = torch.randn(out_ch, generator=gen)


def _norm(sd, name, ch, gen):
    sd[name + '.weight'] = torch.rand(ch, generator=gen) + 0.5
    sd[name + '.bias'] = torch.randn(ch, generator=gen)


def official_state_dict(levels=4, refine=False, two_stage=False, seed=0):
    """Keys and shapes of fundamentalvision/Deformable-DETR's DeformableDETR (R50, 6 + 6 layers, 91 logits)."""
    from mmdet.models.backbones import ResNet
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, value in ResNet(depth=50).state_dict().items():  # torchvision names; FrozenBatchNorm2d has no counter
        if not key.endswith('num_batches_tracked'):
            sd['backbone.0.body.' + key] = torch.randn(value.shape, generator=gen)
    in_channels = [512, 1024, 2048][-levels:] if levels < 4 else [512, 1024, 2048, 2048]
    for lvl, in_ch in enumerate(in_channels):
        k = 3 if lvl == 3 else 1
        sd[f'input_proj.{lvl}.0.weight'] = torch.randn(C, in_ch, k, k, generator=gen)
        sd[f'input_proj.{lvl}.0.bias'] = torch.randn(C, generator=gen)
        _norm(sd, f'input_proj.{lvl}.1', C, gen)
    sd['transformer.level_embed'] = torch.randn(levels, C, generator=gen)
    for kind in ('encoder', 'decoder'):
        for i in range(6):
            p = f'transformer.{kind}.layers.{i}.'
            attn = p + ('self_attn' if kind == 'encoder' else 'cross_attn')
            _linear(sd, attn + '.sampling_offsets', 8 * levels * 4 * 2, C, gen)
            _linear(sd, attn + '.attention_weights', 8 * levels * 4, C, gen)
            _linear(sd, attn + '.value_proj', C, C, gen)
            _linear(sd, attn + '.output_proj', C, C, gen)
            _linear(sd, p + 'linear1', FFN, C, gen)
            _linear(sd, p + 'linear2', C, FFN, gen)
            for n in ((1, 2) if kind == 'encoder' else (1, 2, 3)):
                _norm(sd, p + f'norm{n}', C, gen)
            if kind == 'decoder':
                sd[p + 'self_attn.in_proj_weight'] = torch.randn(3 * C, C, generator=gen)
                sd[p + 'self_attn.in_proj_bias'] = torch.randn(3 * C, generator=gen)
                _linear(sd, p + 'self_attn.out_proj', C, C, gen)
    if two_stage:
        _linear(sd, 'transformer.enc_output', C, C, gen)
        _norm(sd, 'transformer.enc_output_norm', C, gen)
        _linear(sd, 'transformer.pos_trans', 2 * C, 2 * C, gen)
        _norm(sd, 'transformer.pos_trans_norm', 2 * C, gen)
    else:
        _linear(sd, 'transformer.reference_points', 2, C, gen)
        sd['query_embed.weight'] = torch.randn(Q, 2 * C, generator=gen)
    num_pred = 7 if two_stage else 6
    shared = not refine
    for i in range(num_pred):
        src = 0 if shared else i
        if shared and i > 0:
            for key in [k for k in sd if k.startswith(('class_embed.0.', 'bbox_embed.0.'))]:
                sd[key.replace('_embed.0.', f'_embed.{i}.', 1)] = sd[key]
            continue
        _linear(sd, f'class_embed.{src}', 91, C, gen)
        for j, out_ch in enumerate((C, C, 4)):
            _linear(sd, f'bbox_embed.{src}.layers.{j}', out_ch, C, gen)
    if refine:  # the decoder holds aliases of the heads
        for key in [k for k in sd if k.startswith('bbox_embed.')]:
            sd['transformer.decoder.' + key] = sd[key]
    if two_stage:
        for key in [k for k in sd if k.startswith('class_embed.')]:
            sd['transformer.decoder.' + key] = sd[key]
    return sd


@pytest.mark.parametrize('config,levels,refine,two_stage', [
    ('deformable_detr_r50.py', 4, False, False),
    ('deformable_detr_r50_refine.py', 4, True, False),
    ('deformable_detr_r50_refine_twostage.py', 4, True, True),
    ('deformable_detr_r50_single_scale.py', 1, False, False),
])
def test_converted_checkpoint_loads_strictly(config, levels, refine, two_stage, build_detector):
    official = official_state_dict(levels, refine, two_stage)
    converted, variant = converter.convert(official)
    assert variant == dict(num_feature_levels=levels, with_box_refine=refine, as_two_stage=two_stage)
    assert converter.config_for(variant) == 'configs/' + config
    model = build_detector('configs/' + config, neck=dict(bias=True))
    model.load_state_dict(converted, strict=True)
    sd = model.state_dict()
    # decoder norms: official norm2 follows self-attention, norm1 cross-attention
    assert torch.equal(sd['decoder.layers.3.norms.0.weight'], official['transformer.decoder.layers.3.norm2.weight'])
    assert torch.equal(sd['decoder.layers.3.norms.1.weight'], official['transformer.decoder.layers.3.norm1.weight'])
    assert torch.equal(sd['encoder.layers.2.ffn.layers.1.weight'], official['transformer.encoder.layers.2.linear2.weight'])
    assert torch.equal(sd['decoder.layers.0.self_attn.attn.in_proj_weight'],
                       official['transformer.decoder.layers.0.self_attn.in_proj_weight'])
    assert torch.equal(sd['bbox_head.reg_branches.1.4.weight'], official['bbox_embed.1.layers.2.weight'])
    assert torch.equal(sd['neck.convs.0.conv.bias'], official['input_proj.0.0.bias'])
    # classes: ours 0 = person (id 1), 11 = stop sign (id 13), 79 = toothbrush (id 90)
    for cls, cat_id in ((0, 1), (11, 13), (79, 90)):
        assert torch.equal(sd['bbox_head.cls_branches.0.weight'][cls], official['class_embed.0.weight'][cat_id])
    if two_stage:  # the proposal scorer ranks by channel 0, the official objectness row
        assert torch.equal(sd['bbox_head.cls_branches.6.bias'][0], official['class_embed.6.bias'][0])
        assert torch.equal(sd['pos_trans_fc.weight'], official['transformer.pos_trans.weight'])
    if levels == 4:
        assert torch.equal(sd['neck.extra_convs.0.gn.weight'], official['input_proj.3.1.weight'])


def test_cli_writes_once_and_never_overwrites(tmp_path, capsys):
    src, dst = tmp_path / 'official.pth', tmp_path / 'out' / 'converted.pth'
    torch.save(dict(model=official_state_dict(two_stage=True, refine=True), args=argparse.Namespace(lr=2e-4)), src)
    converter.main([str(src), str(dst)])
    out = capsys.readouterr().out
    assert 'configs/deformable_detr_r50_refine_twostage.py' in out and 'model.neck.bias=True' in out
    saved = torch.load(dst, weights_only=True)
    assert 'state_dict' in saved and saved['meta']['variant']['as_two_stage']
    before = dst.read_bytes()
    with pytest.raises(SystemExit, match='exists'):
        converter.main([str(src), str(dst)])
    assert dst.read_bytes() == before


def test_rejects_other_state_dicts():
    with pytest.raises(ValueError, match='not an official Deformable DETR state dict'):
        converter.convert({'backbone.conv1.weight': torch.zeros(1)})
