# + iterative bounding box refinement (paper: 46.2 AP; mmdet 3.x: 46.2).
_base_ = './deformable_detr_r50.py'
model = dict(with_box_refine=True)
