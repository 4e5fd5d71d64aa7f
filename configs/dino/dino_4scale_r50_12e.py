# DINO-4scale, ResNet-50, 12 epochs on COCO (arXiv 2203.03605): mmdet 3.3.0's recipe (its
# dino-4scale_r50_8xb2-12e_coco.py, 49.0 AP in mmdet's model zoo) as mmddetr's DINO (mmdet's DINO on our encoder,
# decoder layers and attention, the fast modules of _base_/fast_modules.py; mmdet's DINO checkpoints load strictly) and
# mmddetr's runtime. The data pipeline (DETR augmentation) is Deformable DETR's, as in mmdet.
_base_ = '../deformable_detr_r50.py'

# Deformable DETR R50's backbone, neck, data preprocessor and matching costs; DINO's own parts below.
model = dict(
    type='DINO',  # mmddetr.DINO
    num_queries=900,  # matching queries
    with_box_refine=True,
    as_two_stage=True,
    encoder=dict(  # mmddetr.DeformableDetrTransformerEncoder
        layer_cfg=dict(
            self_attn_cfg=dict(_delete_=True, embed_dims=256, num_levels=4, dropout=0.0),
            ffn_cfg=dict(feedforward_channels=2048, ffn_drop=0.0))),
    decoder=dict(  # mmddetr.DinoTransformerDecoder: mmdet's, on our decoder layers
        layer_cfg=dict(
            self_attn_cfg=dict(_delete_=True, embed_dims=256, num_heads=8, dropout=0.0),
            cross_attn_cfg=dict(_delete_=True, embed_dims=256, num_levels=4, dropout=0.0),
            ffn_cfg=dict(feedforward_channels=2048, ffn_drop=0.0))),
    positional_encoding=dict(offset=0.0, temperature=20),
    bbox_head=dict(type='DINOHead', loss_cls=dict(loss_weight=1.0)),
    dn_cfg=dict(  # contrastive denoising queries
        label_noise_scale=0.5,
        box_noise_scale=1.0,
        group_cfg=dict(dynamic=True, num_groups=None, num_dn_queries=100)),
    test_cfg=dict(max_per_img=300))

# AdamW 1e-4 (x0.1 for the backbone), weight decay 1e-4, L2 grad clip 0.1, 12 epochs with the learning rate x0.1
# after epoch 11, total batch 16.
optim_wrapper = dict(
    optimizer=dict(lr=0.0001),
    paramwise_cfg=dict(_delete_=True, custom_keys={'backbone': dict(lr_mult=0.1)}))
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[11], gamma=0.1)]
auto_scale_lr = dict(base_batch_size=16)
