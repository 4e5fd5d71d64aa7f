"""The speed variants of mmddetr's modules, each with the parameters and values of the plain module it stands for.

``configs/_base_/fast_modules.py`` switches them on (every shipped config inherits it); without it the plain modules
(mmddetr's layers on mmcv's ``FFN`` and ``MultiheadAttention``, torch's dropout, mmdet's ``DetDataPreprocessor``) are
built. docs/layout.md draws both.
"""
from .data_preprocessor import ChannelsLastDetDataPreprocessor
from .deformable_attention import FastMultiScaleDeformableAttention
from .dropout import FastDropout
from .ffn import FastFFN, GradAwareReLU
from .multihead_attention import FastMultiheadAttention, OutputOnlyMultiheadAttention
from .transformer_layers import FastDeformableDetrTransformerDecoderLayer, FastDeformableDetrTransformerEncoderLayer

__all__ = [
    'ChannelsLastDetDataPreprocessor', 'FastMultiScaleDeformableAttention', 'FastDropout', 'FastFFN', 'GradAwareReLU',
    'FastMultiheadAttention', 'OutputOnlyMultiheadAttention', 'FastDeformableDetrTransformerEncoderLayer',
    'FastDeformableDetrTransformerDecoderLayer'
]
