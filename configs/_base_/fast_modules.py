# The fast modules (mmddetr/models/fast/): the same parameters and values as the plain ones, faster on CPU. Every
# shipped config inherits this file through configs/deformable_detr_r50.py; drop it from that file's _base_ (or set
# these three types back to DetDataPreprocessor, DeformableDetrTransformerEncoderLayer and
# DeformableDetrTransformerDecoderLayer) for the plain modules. What each one changes: docs/layout.md.
model = dict(
    data_preprocessor=dict(type='ChannelsLastDetDataPreprocessor'),
    encoder=dict(layer_cfg=dict(type='FastDeformableDetrTransformerEncoderLayer')),
    decoder=dict(layer_cfg=dict(type='FastDeformableDetrTransformerDecoderLayer')))
