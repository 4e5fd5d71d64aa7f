"""DINO (arXiv 2203.03605): mmdet's detector on mmddetr's transformer layers."""
from typing import Tuple

import torch
from mmdet.models.detectors import DINO as MmdetDINO
from torch import Tensor, nn

from mmddetr.models.layers.builder import build_from_cfg_or_default
from mmddetr.models.mmdet_attention import mmdet_attention
from mmddetr.registry import MODELS
from .utils import channels_last_on_cpu, check_positional_encoding


@MODELS.register_module()
class DINO(MmdetDINO):
    """mmdet 3.3.0's ``DINO`` (contrastive denoising queries, mixed query selection, look forward twice) with
    mmddetr's encoder (:class:`DeformableDetrTransformerEncoder`), decoder layers (:class:`DinoTransformerDecoder`),
    attention and FFN, and channels-last images on CPU (:func:`channels_last_on_cpu`).

    Everything else is mmdet's: the config keys, the denoising queries, query selection, ``DINOHead`` and its
    losses. Parameter names are mmdet's, so mmdet's DINO checkpoints load strictly, and the outputs are mmdet's DINO's
    on mmcv's attention up to float rounding.

    Args:
        encoder (dict): Encoder config (mmdet's keys); ``type`` defaults to
            ``mmddetr.DeformableDetrTransformerEncoder``.
        decoder (dict): Decoder config (mmdet's keys); ``type`` defaults to ``mmddetr.DinoTransformerDecoder``.
        *args, **kwargs: mmdet's ``DINO`` (``dn_cfg``, ``with_box_refine`` and ``as_two_stage`` both True, ...).
    """

    def _init_layers(self) -> None:
        """mmdet's DINO layers (positional encoding, content query embedding, level embedding, the memory's
        projection for query selection), the encoder and decoder built from mmddetr."""
        self.positional_encoding = build_from_cfg_or_default(self.positional_encoding, 'SinePositionalEncoding')
        self.encoder = build_from_cfg_or_default(self.encoder, 'mmddetr.DeformableDetrTransformerEncoder')
        self.decoder = build_from_cfg_or_default(self.decoder, 'mmddetr.DinoTransformerDecoder')
        self.embed_dims = self.encoder.embed_dims
        check_positional_encoding(self.positional_encoding, self.embed_dims)
        self.query_embedding = nn.Embedding(self.num_queries, self.embed_dims)  # content queries only
        self.level_embed = nn.Parameter(torch.Tensor(self.num_feature_levels, self.embed_dims))
        self.memory_trans_fc = nn.Linear(self.embed_dims, self.embed_dims)
        self.memory_trans_norm = nn.LayerNorm(self.embed_dims)

    def init_weights(self) -> None:
        """mmdet's DINO initialisation. It re-initialises the deformable attention modules it finds by mmdet's class
        name, so it runs with that name bound to ours (:func:`mmdet_attention`)."""
        with mmdet_attention():
            super().init_weights()

    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor]:
        """Backbone and neck features, each (bs, C_l, H_l, W_l); channels-last on CPU."""
        return super().extract_feat(channels_last_on_cpu(batch_inputs))
