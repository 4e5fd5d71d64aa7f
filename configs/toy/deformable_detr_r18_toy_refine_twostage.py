# Toy ++ two-stage: the README's main job, tuned to learn more per training image: a ResNet-18 of half the width
# (base channels 32: a quarter of its compute) and batch 4 (twice the updates per image of batch 8).
_base_ = './deformable_detr_r18_toy_refine.py'
model = dict(as_two_stage=True, backbone=dict(base_channels=32), neck=dict(in_channels=[64, 128, 256]))
train_dataloader = dict(batch_size=4)
auto_scale_lr = dict(base_batch_size=4)
train_cfg = dict(val_interval=300)  # every 1,200 images
default_hooks = dict(checkpoint=dict(interval=300))
