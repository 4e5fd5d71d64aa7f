# Toy single-scale Deformable DETR: the main job's recipe (configs/toy/deformable_detr_r18_toy_refine_twostage.py:
# half-width ResNet-18 from scratch, 384 px, batch 4, EMA, seed 0) with C5 only (stride 32, one level in every
# attention), without refinement or two-stage: the paper's single-scale row (tools/paper_tables.py, docs/paper.md).
_base_ = './deformable_detr_r18_toy_refine_twostage.py'
model = dict(
    num_feature_levels=1,
    with_box_refine=False,
    as_two_stage=False,
    backbone=dict(out_indices=(3, )),
    neck=dict(in_channels=[256], num_outs=1),
    encoder=dict(layer_cfg=dict(self_attn_cfg=dict(num_levels=1))),
    decoder=dict(layer_cfg=dict(cross_attn_cfg=dict(num_levels=1))))
