# Toy DETR: mmdet 3.3.0's DETR (detr/detr_r50_8xb2-150e_coco.py: its classes, losses and matching costs) at the toy
# size of the Deformable DETR toy configs, on the main job's data, schedule and runtime
# (configs/toy/deformable_detr_r18_toy_refine_twostage.py: 384 px, batch 4, AdamW 5e-4 with x0.1 for the last sixth,
# clip 0.1, EMA, seed 0): the same half-width ResNet-18 from scratch (C5 only, as DETR), embed dims 128, 3 + 3 layers,
# FFN 512, 100 queries, no dropout. The DETR of the paper's Table 1 in miniature (tools/paper_tables.py).
_base_ = './deformable_detr_r18_toy_refine_twostage.py'

embed_dims = 128
_attention = dict(embed_dims=embed_dims, num_heads=8, dropout=0.0, batch_first=True)  # mmcv's MultiheadAttention
_ffn = dict(embed_dims=embed_dims, feedforward_channels=512, num_fcs=2, ffn_drop=0.0,
            act_cfg=dict(type='ReLU', inplace=True))
model = dict(
    _delete_=True,
    type='mmdet.DETR',
    num_queries=100,
    data_preprocessor=dict(type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=1),
    backbone=dict(type='mmdet.ResNet', depth=18, base_channels=32, num_stages=4, out_indices=(3, ), frozen_stages=-1,
                  norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch', init_cfg=None),
    neck=dict(type='mmdet.ChannelMapper', in_channels=[256], kernel_size=1, out_channels=embed_dims, act_cfg=None,
              norm_cfg=None, num_outs=1),
    encoder=dict(num_layers=3, layer_cfg=dict(self_attn_cfg=_attention, ffn_cfg=_ffn)),  # DetrTransformerEncoder
    decoder=dict(num_layers=3, layer_cfg=dict(self_attn_cfg=_attention, cross_attn_cfg=_attention, ffn_cfg=_ffn),
                 return_intermediate=True),  # DetrTransformerDecoder
    positional_encoding=dict(num_feats=embed_dims // 2, normalize=True),
    bbox_head=dict(
        type='mmdet.DETRHead',
        num_classes=5,
        embed_dims=embed_dims,
        loss_cls=dict(type='mmdet.CrossEntropyLoss', bg_cls_weight=0.1, use_sigmoid=False, loss_weight=1.0,
                      class_weight=1.0),
        loss_bbox=dict(type='mmdet.L1Loss', loss_weight=5.0),
        loss_iou=dict(type='mmdet.GIoULoss', loss_weight=2.0)),
    train_cfg=dict(
        assigner=dict(
            type='mmdet.HungarianAssigner',
            match_costs=[
                dict(type='mmdet.ClassificationCost', weight=1.),
                dict(type='mmdet.BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='mmdet.IoUCost', iou_mode='giou', weight=2.0)
            ])),
    test_cfg=dict(max_per_img=100))
