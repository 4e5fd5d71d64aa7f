# Toy ++ two-stage: the README's main job, tuned to learn more per training image: a ResNet-18 of half the width
# (base channels 32: a quarter of its compute), batch 4 (twice the updates per image of batch 8), the toy images
# upscaled from 256 to 384 px (the smallest objects, 8 px, then cover more than one cell of the stride-8 level),
# 4,800 images (1,200 iterations) with the learning rate x0.1 for the last 200 (tools/toy_demo.py moves the drop to 5/6
# of the iterations its --images give), and validation and the saved checkpoint on an exponential moving average of
# the weights (about the last 50 iterations'). Each change and its gain, on two seeds: docs/benchmarks.md, "The main
# job".
_base_ = './deformable_detr_r18_toy_refine.py'
model = dict(as_two_stage=True, backbone=dict(base_channels=32), neck=dict(in_channels=[64, 128, 256]))

image_size = 384
train_pipeline = [
    dict(type='LoadImageFromFile', on_error='raise'),  # or 'skip' bad images with a warning
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
auto_scale_lr = dict(base_batch_size=4)

max_iters = 1200
train_cfg = dict(max_iters=max_iters, val_interval=300)  # validation every 1,200 images
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
                   dict(type='MultiStepLR', milestones=[1000], gamma=0.1, by_epoch=False, begin=0, end=max_iters)]
# The average is what validation, testing and the checkpoint's state_dict hold (the trained weights: ema_state_dict);
# its first iterations follow the weights closely (momentum (1 - 0.02) * exp(-(1 + step) / 50) + 0.02). Appended to
# the runtime's hooks (RNGStateHook, NumClassCheckHook), which a list of its own would replace.
custom_hooks = _base_.custom_hooks + [
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.02, gamma=50, update_buffers=True, priority=49)]
default_hooks = dict(checkpoint=dict(interval=300))
# A fixed seed, so that a rerun on the same machine and thread count repeats the curve (what two seeds gave:
# docs/benchmarks.md, "The main job").
randomness = dict(seed=0)
