"""What the Hugging Face conversion reads from a ``config.json`` and a file's heads, on small dicts (no detector, no
transformers): settings mmddetr's configs do not express are refused naming the setting; the layers, queries, heads,
sampling points and FFN widths reach the written config; heads that differ where ours are shared are refused."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmddetr.convert.checkpoint import derived_config
from mmddetr.convert.hf import HEAD_PARAMS, HFCheckpointError, architecture, mmdet_settings, split_heads

CONFIGS = osp.join(osp.dirname(osp.abspath(__file__)), '..', '..', 'configs')
CLASSES = ('circle', 'square', 'triangle')
ID2LABEL = {str(i): name for i, name in enumerate(CLASSES)}


@pytest.mark.parametrize('setting,value,message', [
    ('dilation', True, 'a backbone other than ResNet-50 without dilation'),
    ('d_model', 128, "d_model 128 (mmddetr's configs: 256)"),
    ('position_embedding_type', 'learned', "position_embedding_type 'learned' (mmddetr's configs: 'sine')"),
    ('num_feature_levels', 2, "num_feature_levels 2 (mmddetr's configs: 1 or 4)"),
])
def test_settings_mmddetrs_configs_do_not_express_are_refused_by_name(setting, value, message):
    """docs/detector.md: ResNet-50 without dilation, 256 channels, the sine embedding and 1 or 4 levels; other
    settings stop with an error."""
    config = dict(model_type='deformable_detr', id2label=ID2LABEL)
    assert architecture(config)['num_feature_levels'] == 4  # the defaults are accepted
    with pytest.raises(HFCheckpointError) as error:
        architecture(dict(config, **{setting: value}))
    assert str(error.value) == f'config.json: unsupported {message}'


def test_layers_queries_heads_points_and_ffn_widths_reach_the_written_config(tmp_path):
    """docs/detector.md: the written config takes the config.json's layers, queries, heads, sampling points and FFN
    widths (each value here differs from the paper's, the shipped config's, and between encoder and decoder): the
    encoder and decoder it builds have them."""
    from mmengine.registry import DefaultScope

    from mmddetr.models.layers import DeformableDetrTransformerDecoder, DeformableDetrTransformerEncoder
    from mmddetr.models.layers.builder import build_from_cfg_or_default
    hf = dict(model_type='deformable_detr', id2label=ID2LABEL, encoder_layers=2, decoder_layers=3, num_queries=50,
              encoder_attention_heads=4, decoder_attention_heads=2, encoder_n_points=3, decoder_n_points=2,
              encoder_ffn_dim=512, decoder_ffn_dim=768)
    path = tmp_path / 'hub.py'
    path.write_text(derived_config(osp.join(CONFIGS, 'deformable_detr_r50.py'), str(path),
                                   mmdet_settings(architecture(hf), len(CLASSES)), CLASSES, 'hub'))
    cfg = Config.fromfile(str(path))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        encoder = build_from_cfg_or_default(cfg.model.encoder, DeformableDetrTransformerEncoder)
        decoder = build_from_cfg_or_default(cfg.model.decoder, DeformableDetrTransformerDecoder)
    assert (len(encoder.layers), len(decoder.layers), cfg.model.num_queries, cfg.model.bbox_head.num_classes) == (
        2, 3, 50, 3)
    for layer in encoder.layers:
        assert (layer.self_attn.num_heads, layer.self_attn.num_points, layer.ffn.feedforward_channels) == (4, 3, 512)
    for layer in decoder.layers:
        assert (layer.self_attn.num_heads, layer.cross_attn.num_heads, layer.cross_attn.num_points,
                layer.ffn.feedforward_channels) == (2, 2, 2, 768)


def _heads(*modules):
    """Random weights of every parameter of the head ``modules`` (small shapes: only equality matters)."""
    gen = torch.Generator().manual_seed(0)
    return {f'{module}.{param}': torch.randn(3, 2, generator=gen) for module in modules
            for param in HEAD_PARAMS[module.split('.')[-2]]}


def _refused(state_dict, arch, module, shared, param='layers.2.bias'):
    with pytest.raises(HFCheckpointError) as error:
        split_heads(state_dict, arch)
    assert str(error.value) == (f'{module}.{param} differs from {shared}.{param}: mmddetr\'s model has one branch for '
                                f'both ({"with" if arch["with_box_refine"] else "without"} box refinement)')


def test_without_refinement_a_second_layers_box_head_must_be_the_firsts():
    """Our model has one class and one box branch for every decoder layer."""
    arch = architecture(dict(model_type='deformable_detr', id2label=ID2LABEL, decoder_layers=2))
    heads = _heads('class_embed.0', 'bbox_embed.0')  # as save_pretrained writes it: the first layer's alone
    split = split_heads(dict(heads), arch)
    assert all(torch.equal(split[key.replace('.0.', '.1.', 1)], value) for key, value in heads.items())
    second = {f'bbox_embed.1.{param}': heads[f'bbox_embed.0.{param}'].clone() for param in HEAD_PARAMS['bbox_embed']}
    split_heads(dict(heads, **second), arch)  # written out, the same values: accepted
    second['bbox_embed.1.layers.2.bias'] += 1
    _refused(dict(heads, **second), arch, 'bbox_embed.1', 'bbox_embed.0')


def test_with_refinement_the_decoders_box_head_must_be_the_top_level_one():
    """Our model refines and predicts with the same box branch; the class heads are a layer's own."""
    arch = architecture(dict(model_type='deformable_detr', id2label=ID2LABEL, decoder_layers=2, with_box_refine=True))
    # as the hub's refinement files: a class head per layer, the decoder's box heads (the tie sources) alone
    heads = _heads('class_embed.0', 'class_embed.1', 'model.decoder.bbox_embed.0', 'model.decoder.bbox_embed.1')
    split = split_heads(dict(heads), arch)
    assert all(torch.equal(split[key.replace('model.decoder.', '')], value) for key, value in heads.items())
    top = {f'bbox_embed.1.{param}': heads[f'model.decoder.bbox_embed.1.{param}'].clone()
           for param in HEAD_PARAMS['bbox_embed']}
    split_heads(dict(heads, **top), arch)  # written out, the same values: accepted
    top['bbox_embed.1.layers.2.bias'] += 1
    _refused(dict(heads, **top), arch, 'model.decoder.bbox_embed.1', 'bbox_embed.1')
