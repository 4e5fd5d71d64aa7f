# The paper's schedule: AdamW 2e-4 (x0.1 for the backbone, sampling offsets and reference points), weight decay
# 1e-4, L2 grad clip 0.1, 50 epochs with the learning rate x0.1 after epoch 40, total batch 32. torch's fused AdamW
# (same update, one kernel per parameter group: faster steps on CPU than the default loop; docs/benchmarks.md).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0002, weight_decay=0.0001, fused=True),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(
        custom_keys={
            'backbone': dict(lr_mult=0.1),
            'sampling_offsets': dict(lr_mult=0.1),
            'reference_points': dict(lr_mult=0.1)
        }))

max_epochs = 50
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[40], gamma=0.1)]

# The learning rate is for a total batch of 32 (16 GPUs x 2 images); --auto-scale-lr rescales it to yours.
auto_scale_lr = dict(base_batch_size=32)
