# ++ two-stage: queries from the encoder's top-300 proposals (paper: 46.9 AP; mmdet 3.x: 47.0).
_base_ = './deformable_detr_r50_refine.py'
model = dict(as_two_stage=True)
