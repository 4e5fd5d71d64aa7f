"""DINO (arXiv 2203.03605): mmdet's detector on mmddetr's transformer layers."""
from typing import Optional

import torch
from mmcv.ops import MultiScaleDeformableAttention as MmcvMultiScaleDeformableAttention
from mmdet.models.detectors import DINO as MmdetDINO
from mmengine.model import BaseModule
from torch import nn

from mmddetr.models.layers import (DeformableDetrTransformerEncoder, DinoTransformerDecoder,
                                   MultiScaleDeformableAttention)
from mmddetr.models.layers.builder import build_from_cfg_or_default
from mmddetr.registry import MODELS
from .utils import check_positional_encoding, data_preprocessor_cfg


@MODELS.register_module()
class DINO(MmdetDINO):
    """mmdet 3.3.0's ``DINO`` (contrastive denoising queries, mixed query selection, look forward twice) with
    mmddetr's encoder (:class:`DeformableDetrTransformerEncoder`), decoder (:class:`DinoTransformerDecoder`) and
    attention.

    Everything else is mmdet's: the config keys, the denoising queries, query selection, ``DINOHead`` and its
    losses. Parameter names are mmdet's, so mmdet's DINO checkpoints load strictly, and the outputs are mmdet's DINO's
    on mmcv's attention up to float rounding.

    Args:
        encoder (dict): Encoder config (mmdet's keys); ``type`` defaults to
            ``mmddetr.DeformableDetrTransformerEncoder``.
        decoder (dict): Decoder config (mmdet's keys); ``type`` defaults to ``mmddetr.DinoTransformerDecoder``.
        data_preprocessor (dict, optional): ``type`` defaults to mmdet's ``DetDataPreprocessor``.
        *args, **kwargs: mmdet's ``DINO`` (``dn_cfg``, ``with_box_refine`` and ``as_two_stage`` both True, ...).
    """

    def __init__(self, *args, data_preprocessor: Optional[dict] = None, **kwargs) -> None:
        super().__init__(*args, data_preprocessor=data_preprocessor_cfg(data_preprocessor), **kwargs)

    def _init_layers(self) -> None:
        """mmdet's DINO layers (positional encoding, content query embedding, level embedding, the memory's
        projection for query selection), the encoder and decoder built from mmddetr."""
        self.positional_encoding = build_from_cfg_or_default(self.positional_encoding, 'SinePositionalEncoding')
        self.encoder = build_from_cfg_or_default(self.encoder, DeformableDetrTransformerEncoder)
        self.decoder = build_from_cfg_or_default(self.decoder, DinoTransformerDecoder)
        self.embed_dims = self.encoder.embed_dims
        check_positional_encoding(self.positional_encoding, self.embed_dims)
        self.query_embedding = nn.Embedding(self.num_queries, self.embed_dims)  # content queries only
        self.level_embed = nn.Parameter(torch.Tensor(self.num_feature_levels, self.embed_dims))
        self.memory_trans_fc = nn.Linear(self.embed_dims, self.embed_dims)
        self.memory_trans_norm = nn.LayerNorm(self.embed_dims)

    def init_weights(self) -> None:
        """mmdet's DINO initialisation, step for step: the sub-modules' own, xavier-uniform encoder and decoder
        matrices, the deformable attention's own again (mmdet finds it by mmcv's class only; here ours or mmcv's),
        xavier-uniform memory projection and content queries, a normal level embedding."""
        BaseModule.init_weights(self)
        for coder in self.encoder, self.decoder:
            for p in coder.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, (MultiScaleDeformableAttention, MmcvMultiScaleDeformableAttention)):
                m.init_weights()
        nn.init.xavier_uniform_(self.memory_trans_fc.weight)
        nn.init.xavier_uniform_(self.query_embedding.weight)
        nn.init.normal_(self.level_embed)
