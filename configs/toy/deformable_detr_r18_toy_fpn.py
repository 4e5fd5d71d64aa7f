# Toy Deformable DETR with an FPN: the main job's recipe without refinement or two-stage (the multi-scale model of
# tools/paper_tables.py), its neck mmdet's FPN instead of the 1x1 input projections: the paper's Table 2 row "FPN"
# (top-down path and 3x3 convolutions, GroupNorm as in the projections; the 4th level by a 3x3 stride-2 conv on C5).
_base_ = './deformable_detr_r18_toy_refine_twostage.py'
model = dict(
    with_box_refine=False,
    as_two_stage=False,
    neck=dict(_delete_=True, type='FPN', in_channels=[64, 128, 256], out_channels=128, num_outs=4,
              add_extra_convs='on_input', norm_cfg=dict(type='GN', num_groups=32)))
