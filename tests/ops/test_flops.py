"""The op's FLOP formula against a hand count at a small shape, through torch's FlopCounterMode (registered with the
op) and through mmengine's FlopAnalyzer (our handle passed to one analyzer; mmengine's default table left alone)."""
import pytest
import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.complexity_analysis import _DEFAULT_SUPPORTED_FLOP_OPS
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mmddetr.ops import multi_scale_deformable_attn
from mmddetr.ops.flops import MMENGINE_FLOP_HANDLES, ms_deform_attn_multiply_adds

# msda_inputs' default shape: batch 2, 5 queries, 2 heads of 8 channels, 3 levels, 3 points per level. Per sampled
# point and channel, 4 multiply-adds for the bilinear corners and 1 for the attention weight:
# (2 * 5 * 2 * 3 * 3) points * 8 channels * (4 + 1) = 180 * 8 * 5
HAND_MULTIPLY_ADDS = 7200
LINEAR_MULTIPLY_ADDS = 2 * 5 * 16 * 4  # the projection below: (2, 5, 16) x (16, 4)


class AttentionThenLinear(nn.Module):

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(16, 4)

    def forward(self, *inputs):
        return self.proj(multi_scale_deformable_attn(*inputs))


def test_formula_is_the_hand_count(msda_inputs):
    value, _, _, locations, _ = msda_inputs(dtype=torch.float32)
    assert ms_deform_attn_multiply_adds(value.shape, locations.shape) == HAND_MULTIPLY_ADDS


def test_torch_flop_counter_counts_the_op(msda_inputs):
    inputs = msda_inputs(dtype=torch.float32)
    counter = FlopCounterMode(display=False)
    with counter:
        AttentionThenLinear()(*inputs)
    # the compiled op ran and was counted by name, 2 FLOPs per multiply-add (torch's convention)
    assert counter.get_flop_counts()['Global'] == {torch.ops.mmddetr.ms_deform_attn: 2 * HAND_MULTIPLY_ADDS,
                                                   torch.ops.aten.addmm: 2 * LINEAR_MULTIPLY_ADDS}


def test_mmengine_analyzer_counts_the_op_with_our_handle(msda_inputs):
    inputs = msda_inputs(dtype=torch.float32)
    model = AttentionThenLinear()
    default = FlopAnalyzer(model, inputs).unsupported_ops_warnings(False)
    # mmengine's own table (mmdet's get_flops.py) has no handle for the op: it counts 0, and we add none to it
    assert default.by_operator() == {'linear': LINEAR_MULTIPLY_ADDS}
    assert default.unsupported_ops() == {'mmddetr::ms_deform_attn': 1}
    ours = FlopAnalyzer(model, inputs).set_op_handle(**MMENGINE_FLOP_HANDLES)
    # 1 FLOP per multiply-add, as mmengine counts the Linear
    assert ours.by_operator() == {'ms_deform_attn': HAND_MULTIPLY_ADDS, 'linear': LINEAR_MULTIPLY_ADDS}
    assert ours.unsupported_ops() == {}
    assert 'mmddetr::ms_deform_attn' not in _DEFAULT_SUPPORTED_FLOP_OPS


def test_formula_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r'value_shape must have 4 sizes and sampling_locations_shape 6, got '
                                         r'\(2, 3\) and \(1, 2, 3, 4, 5, 2\)'):
        ms_deform_attn_multiply_adds((2, 3), (1, 2, 3, 4, 5, 2))
