# Toy Deformable DETR: trains from scratch on 2 CPU cores in minutes on the procedural shapes data (data/toy/, made on
# first use). ResNet-18 without pretrained weights, embed dims 128, 3 + 3 layers, 100 queries, 256 px images, no
# dropout (a run of a few thousand images is far from overfitting; dropout 0.1 slowed learning: docs/benchmarks.md).
_base_ = '../deformable_detr_r50.py'

embed_dims = 128
model = dict(
    num_queries=100,
    backbone=dict(depth=18, frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                  init_cfg=None),
    neck=dict(in_channels=[128, 256, 512], out_channels=embed_dims),
    encoder=dict(
        num_layers=3,
        layer_cfg=dict(self_attn_cfg=dict(embed_dims=embed_dims, dropout=0.0),
                       ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=512, ffn_drop=0.0))),
    decoder=dict(
        num_layers=3,
        layer_cfg=dict(self_attn_cfg=dict(embed_dims=embed_dims, attn_drop=0.0, dropout_layer=None),
                       cross_attn_cfg=dict(embed_dims=embed_dims, dropout=0.0),
                       ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=512, ffn_drop=0.0))),
    positional_encoding=dict(num_feats=embed_dims // 2),
    bbox_head=dict(num_classes=5, embed_dims=embed_dims))

dataset_type = 'ToyShapesDataset'
data_root = 'data/toy/'
train_pipeline = [
    dict(type='LoadImageFromFile', on_error='raise'),  # or 'skip' bad images with a warning
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(256, 256), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 256), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='train/'), filter_cfg=dict(filter_empty_gt=False), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=5e-4), paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=1.0)}))

# Iteration-based, so that a run can end at any iteration (TimeBudgetHook) with its checkpoint and validation.
max_iters = 4000
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=100)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50)]
auto_scale_lr = dict(base_batch_size=8)
default_hooks = dict(
    logger=dict(interval=10, log_metric_by_epoch=False),  # validation metrics logged at their iteration
    checkpoint=dict(by_epoch=False, interval=100, max_keep_ckpts=2, save_last=True))
log_processor = dict(window_size=10, by_epoch=False)
