# Deformable DETR, ResNet-50, 4 levels, 300 queries, 50 epochs on COCO (paper: 44.5 AP; mmdet 3.x: 44.3).
_base_ = [
    './_base_/datasets/coco_detection.py', './_base_/schedules/schedule_50e.py', './_base_/default_runtime.py',
    './_base_/fast_modules.py'  # the fast modules' types; without this line, the plain modules
]
model = dict(
    type='DeformableDETR',
    num_queries=300,
    num_feature_levels=4,
    with_box_refine=False,
    as_two_stage=False,
    data_preprocessor=dict(  # DetDataPreprocessor's arguments
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=1),
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    neck=dict(
        type='ChannelMapper',
        in_channels=[512, 1024, 2048],
        kernel_size=1,
        out_channels=256,
        act_cfg=None,
        norm_cfg=dict(type='GN', num_groups=32),
        num_outs=4),
    encoder=dict(  # DeformableDetrTransformerEncoder
        num_layers=6,
        layer_cfg=dict(  # the encoder layer's arguments; its type: _base_/fast_modules.py
            self_attn_cfg=dict(embed_dims=256, num_levels=4, batch_first=True),  # MultiScaleDeformableAttention's
            ffn_cfg=dict(embed_dims=256, feedforward_channels=1024, ffn_drop=0.1))),  # mmcv's FFN's
    decoder=dict(  # DeformableDetrTransformerDecoder
        num_layers=6,
        return_intermediate=True,
        layer_cfg=dict(  # the decoder layer's arguments; its type: _base_/fast_modules.py
            self_attn_cfg=dict(  # mmcv's MultiheadAttention's
                embed_dims=256, num_heads=8, attn_drop=0.1, dropout_layer=dict(type='Dropout', drop_prob=0.1),
                batch_first=True),
            cross_attn_cfg=dict(embed_dims=256, num_levels=4, batch_first=True),  # MultiScaleDeformableAttention's
            ffn_cfg=dict(embed_dims=256, feedforward_channels=1024, ffn_drop=0.1)),  # mmcv's FFN's
        post_norm_cfg=None),
    positional_encoding=dict(num_feats=128, normalize=True, offset=-0.5),
    bbox_head=dict(
        type='DeformableDETRHead',
        num_classes=80,
        sync_cls_avg_factor=True,
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=2.0),
        loss_bbox=dict(type='L1Loss', loss_weight=5.0),
        loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=2.0),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)
            ])),
    test_cfg=dict(max_per_img=100))

# DETR augmentation: flip, multi-scale resize (short side 480-800, long <= 1333), or resize-crop-resize.
_multi_scale = [(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333), (640, 1333), (672, 1333),
                (704, 1333), (736, 1333), (768, 1333), (800, 1333)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}, on_error='raise'),  # or 'skip' bad images
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=_multi_scale, keep_ratio=True)],
            [
                dict(type='RandomChoiceResize', scales=[(400, 4200), (500, 4200), (600, 4200)], keep_ratio=True),
                dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600), allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=_multi_scale, keep_ratio=True)
            ]
        ]),
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(filter_cfg=dict(filter_empty_gt=False), pipeline=train_pipeline))
