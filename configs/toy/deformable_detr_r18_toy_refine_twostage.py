# Toy ++ two-stage: the README's main job.
_base_ = './deformable_detr_r18_toy_refine.py'
model = dict(as_two_stage=True)
