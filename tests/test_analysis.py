"""mmddetr.analysis: the fused-attention handle against mmengine's count of the same products as matmuls, and a toy
detector's groups adding up to its totals, with our op counted by both counters alike."""
import math

import torch
from mmengine.analysis import FlopAnalyzer
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from mmddetr.analysis import HEAD, build_model, complexity, flop_analyzer, load_config, preprocessed_input
from toy_configs import MAIN_TOY


class Attention(nn.Module):

    def __init__(self, fused):
        super().__init__()
        self.fused = fused

    def forward(self, query, key, value):
        if self.fused:
            return F.scaled_dot_product_attention(query, key, value)
        weights = (query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])).softmax(-1)
        return weights @ value


def test_fused_attention_counted_as_its_matmuls():
    query, key, value = torch.randn(2, 3, 7, 4), torch.randn(2, 3, 9, 4), torch.randn(2, 3, 9, 5)
    # query x key: 2 * 3 * 7 * 9 * 4; weights x value: 2 * 3 * 7 * 9 * 5
    hand = 2 * 3 * 7 * 9 * (4 + 5)
    matmuls = FlopAnalyzer(Attention(fused=False), (query, key, value)).unsupported_ops_warnings(False)
    assert matmuls.by_operator()['matmul'] == hand  # mmengine's own count of the unfused products
    default = FlopAnalyzer(Attention(fused=True), (query, key, value)).unsupported_ops_warnings(False)
    assert default.total() == 0 and default.unsupported_ops() == {'aten::scaled_dot_product_attention': 1}
    fused = flop_analyzer(Attention(fused=True), (query, key, value))
    assert fused.by_operator() == {'scaled_dot_product_attention': hand}


def test_toy_detector_groups_add_up_and_both_counters_count_the_op():
    model = build_model(load_config(MAIN_TOY))
    result = complexity(model, (96, 128))
    groups, total = result['groups'], result['total']
    assert list(groups) == ['backbone', 'neck', 'encoder', 'decoder', HEAD]
    assert groups['encoder']['members'] == ['encoder', 'positional_encoding', 'level_embed']
    assert groups[HEAD]['members'] == ['bbox_head', 'proposal_head']  # two-stage: no query embedding
    assert result['input_shape'] == (96, 128)
    assert total['params'] == sum(p.numel() for p in model.parameters())
    for key in ('params', 'flops', 'op_flops'):
        assert sum(g[key] for g in groups.values()) == total[key], key
    # the op runs in the encoder and the decoder only, and torch's counter (2 per multiply-add) sees the same calls
    assert groups['encoder']['op_flops'] > 0 and groups['decoder']['op_flops'] > 0
    assert groups['encoder']['op_flops'] + groups['decoder']['op_flops'] == total['op_flops']
    inputs, samples = preprocessed_input(model, (96, 128))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(inputs, samples, mode='tensor')
    assert counter.get_flop_counts()['Global'][torch.ops.mmddetr.ms_deform_attn] == 2 * total['op_flops']
    assert 'forward' not in vars(model)  # the analyzer's forward wrapper is gone


def test_dc5_dilates_the_last_stage_of_mmdets_detr():
    """``--dc5`` (DETR's DC5): the backbone's last stage at stride 16 instead of 32, dilated, same weights' shapes."""
    from mmengine.registry import MODELS, DefaultScope

    features = {}
    for dc5 in (False, True):
        cfg = load_config('mmdet::detr/detr_r50_8xb2-150e_coco.py', dc5=dc5)
        cfg.model.backbone.init_cfg = None
        with DefaultScope.overwrite_default_scope('mmdet'):
            backbone = MODELS.build(cfg.model.backbone)
        backbone.eval()  # mmdet's ResNet.train returns None
        with torch.no_grad():
            features[dc5] = backbone(torch.zeros(1, 3, 64, 96))[-1]
        features[dc5, 'shapes'] = [p.shape for p in backbone.parameters()]
        features[dc5, 'conv2'] = (backbone.layer4[0].conv2.stride, backbone.layer4[0].conv2.dilation)
    assert features[False].shape == (1, 2048, 2, 3) and features[True].shape == (1, 2048, 4, 6)
    assert features[False, 'shapes'] == features[True, 'shapes']
    assert features[False, 'conv2'] == ((2, 2), (1, 1)) and features[True, 'conv2'] == ((1, 1), (2, 2))
