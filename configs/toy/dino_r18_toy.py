# Toy DINO: mmddetr's DINO (mmdet's DINO on our layers: contrastive denoising queries, mixed query selection, look
# forward twice; arXiv 2203.03605), trained from scratch on the toy data with the Deformable DETR toy configs' data,
# schedule and runtime. ResNet-18 without pretrained weights, 3 + 3 layers, 100 queries. Embed dims stay 256: DINO's
# decoder encodes query positions with 128 sine features per coordinate.
_base_ = './deformable_detr_r18_toy.py'

embed_dims = 256
model = dict(
    type='DINO',
    with_box_refine=True,
    as_two_stage=True,
    neck=dict(out_channels=embed_dims),
    encoder=dict(
        layer_cfg=dict(
            self_attn_cfg=dict(_delete_=True, embed_dims=embed_dims, num_levels=4, dropout=0.0),
            ffn_cfg=dict(embed_dims=embed_dims, ffn_drop=0.0))),
    decoder=dict(
        layer_cfg=dict(
            self_attn_cfg=dict(_delete_=True, embed_dims=embed_dims, num_heads=8, dropout=0.0),
            cross_attn_cfg=dict(_delete_=True, embed_dims=embed_dims, num_levels=4, dropout=0.0),
            ffn_cfg=dict(embed_dims=embed_dims, ffn_drop=0.0))),
    positional_encoding=dict(num_feats=embed_dims // 2, offset=0.0, temperature=20),
    bbox_head=dict(type='DINOHead', embed_dims=embed_dims, loss_cls=dict(loss_weight=1.0)),
    dn_cfg=dict(label_noise_scale=0.5, box_noise_scale=1.0,
                group_cfg=dict(dynamic=True, num_groups=None, num_dn_queries=50)))
