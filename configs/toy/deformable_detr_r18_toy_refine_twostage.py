# Toy ++ two-stage: the README's main job, tuned to learn the most per training image: a ResNet-18 of half the
# width (base channels 32: a quarter of its compute), batch 4 (twice the updates per image of batch 8), and an EMA of
# the weights (the validated, tested and saved ones) that averages over more iterations as training goes on.
_base_ = './deformable_detr_r18_toy_refine.py'
model = dict(as_two_stage=True, backbone=dict(base_channels=32), neck=dict(in_channels=[64, 128, 256]))
train_dataloader = dict(batch_size=4)
auto_scale_lr = dict(base_batch_size=4)
train_cfg = dict(val_interval=300)  # every 1,200 images
default_hooks = dict(checkpoint=dict(interval=300))
# momentum (1 - 0.002) * exp(-iter / 300) + 0.002: about the last 7 iterations averaged at iteration 600, 50 at 1,200
custom_hooks = [dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.002, gamma=300, update_buffers=True,
                     priority=49)]
