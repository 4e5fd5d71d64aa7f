# Toy + iterative box refinement.
_base_ = './deformable_detr_r18_toy.py'
model = dict(with_box_refine=True)
