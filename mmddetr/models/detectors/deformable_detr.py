"""Deformable DETR detector (arXiv 2010.04159): single-/multi-scale, iterative box refinement, two-stage."""
import copy
from typing import Dict, Optional, Tuple

import torch
from mmdet.models.detectors import DetectionTransformer
from mmdet.structures import OptSampleList
from mmengine.model import BaseModule, xavier_init
from torch import Tensor, nn

from mmddetr.models.layers import DeformableDetrTransformerDecoder, DeformableDetrTransformerEncoder
from mmddetr.models.layers.builder import build_from_cfg_or_default
from mmddetr.registry import MODELS
from .utils import check_positional_encoding, data_preprocessor_cfg

# Two-stage parameters live in ``proposal_head``; checkpoints keep mmdet's names for them (detector level).
_PROPOSAL_HEAD_PARAMS = ('memory_trans_fc.', 'memory_trans_norm.', 'pos_trans_fc.', 'pos_trans_norm.')


@MODELS.register_module()
class DeformableDETR(DetectionTransformer):
    """Deformable DETR on mmdet's ``DetectionTransformer`` (pre_transformer → encoder → pre_decoder → decoder).

    Configs are mmdet's: ``encoder``, ``decoder``, ``positional_encoding`` and ``bbox_head`` take the same keys, and
    an optional ``type`` in ``encoder`` / ``decoder`` / ``positional_encoding`` / ``proposal_head`` swaps the module.
    Checkpoints use mmdet's parameter names, so mmdet model-zoo checkpoints load strictly.

    Args:
        encoder (dict): Encoder config; ``type`` defaults to ``DeformableDetrTransformerEncoder``.
        decoder (dict): Decoder config; ``type`` defaults to ``DeformableDetrTransformerDecoder``.
        bbox_head (dict): Head config (``DeformableDETRHead``); the detector sets its ``share_pred_layer``,
            ``num_pred_layer`` and ``as_two_stage``.
        positional_encoding (dict): ``type`` defaults to mmdet's ``SinePositionalEncoding``; ``num_feats * 2`` must
            equal the encoder's embed dims.
        with_box_refine (bool): Iterative box refinement: one head per decoder layer, each refining the reference
            of the next. Default: False.
        as_two_stage (bool): Queries from the encoder's top-scoring proposals. Default: False.
        num_feature_levels (int): Feature levels from the neck (1 for single-scale, 4 in the paper); the
            attention configs' ``num_levels`` must match. Default: 4.
        proposal_head (dict, optional): Two-stage query selection; ``type`` defaults to ``TwoStageProposalHead``.
        data_preprocessor (dict, optional): ``type`` defaults to mmdet's ``DetDataPreprocessor``.
        *args, **kwargs: ``DetectionTransformer``'s (backbone, neck, num_queries, train_cfg, test_cfg, init_cfg).
    """

    def __init__(self,
                 *args,
                 decoder: dict,
                 bbox_head: dict,
                 with_box_refine: bool = False,
                 as_two_stage: bool = False,
                 num_feature_levels: int = 4,
                 proposal_head: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 **kwargs) -> None:
        self.with_box_refine = with_box_refine
        self.as_two_stage = as_two_stage
        self.num_feature_levels = num_feature_levels
        self.proposal_head_cfg = proposal_head
        bbox_head = copy.deepcopy(bbox_head)
        for key in ('share_pred_layer', 'num_pred_layer', 'as_two_stage'):
            if key in bbox_head:
                raise ValueError(f'bbox_head.{key} is set by the detector from with_box_refine / as_two_stage; '
                                 'remove it from the config')
        bbox_head.update(share_pred_layer=not with_box_refine, as_two_stage=as_two_stage,
                         num_pred_layer=decoder['num_layers'] + int(as_two_stage))
        super().__init__(*args, decoder=decoder, bbox_head=bbox_head,
                         data_preprocessor=data_preprocessor_cfg(data_preprocessor), **kwargs)
        self.register_state_dict_post_hook(_proposal_head_keys_to_mmdet)
        self.register_load_state_dict_pre_hook(_proposal_head_keys_from_mmdet)

    def _init_layers(self) -> None:
        """Positional encoding, encoder, decoder, level embedding and the query source (embedding or proposals)."""
        self.positional_encoding = build_from_cfg_or_default(self.positional_encoding, 'SinePositionalEncoding')
        self.encoder = build_from_cfg_or_default(self.encoder, DeformableDetrTransformerEncoder)
        self.decoder = build_from_cfg_or_default(self.decoder, DeformableDetrTransformerDecoder)
        self.embed_dims = self.encoder.embed_dims
        check_positional_encoding(self.positional_encoding, self.embed_dims)
        self._check_num_levels()
        self.level_embed = nn.Parameter(torch.Tensor(self.num_feature_levels, self.embed_dims))
        if self.as_two_stage:
            self.proposal_head = build_from_cfg_or_default(
                self.proposal_head_cfg, 'mmddetr.TwoStageProposalHead', embed_dims=self.embed_dims,
                num_proposals=self.num_queries)
        else:
            self.query_embedding = nn.Embedding(self.num_queries, self.embed_dims * 2)  # split into pos, content
            self.reference_points_fc = nn.Linear(self.embed_dims, 2)

    def _check_num_levels(self) -> None:
        for name, coder, attn in (('encoder', self.encoder, 'self_attn'), ('decoder', self.decoder, 'cross_attn')):
            for layer in coder.layers:
                levels = getattr(getattr(layer, attn, None), 'num_levels', self.num_feature_levels)
                if levels != self.num_feature_levels:
                    raise ValueError(f'{name}.layer_cfg.{attn}_cfg.num_levels ({levels}) must equal '
                                     f'num_feature_levels ({self.num_feature_levels})')

    def init_weights(self) -> None:
        """Xavier-uniform encoder/decoder matrices, then every sub-module with its own ``init_weights`` (the
        deformable attention: offset ring, zero attention weights) re-initialised; normal level embedding."""
        super().init_weights()
        for coder in (self.encoder, self.decoder):
            for p in coder.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
            for m in coder.modules():
                own_init = getattr(type(m), 'init_weights', BaseModule.init_weights)
                if own_init is not BaseModule.init_weights and m is not coder:
                    m.init_weights()
        if not self.as_two_stage:
            xavier_init(self.reference_points_fc, distribution='uniform', bias=0.)
        nn.init.normal_(self.level_embed)

    def forward_transformer(self, img_feats: Tuple[Tensor], batch_data_samples: OptSampleList = None) -> Dict:
        """mmdet's four steps on a batch whose padding is read from the data samples (:meth:`batch_padding`).

        Returns:
            dict: the head's inputs (``hidden_states``, ``references``; in two-stage training also the encoder's
            ``enc_outputs_class`` and ``enc_outputs_coord``).
        """
        return self.forward_transformer_from_sizes(img_feats, *self.batch_padding(batch_data_samples,
                                                                                  img_feats[0].device))

    def forward_transformer_from_sizes(self, img_feats: Tuple[Tensor], input_shape: Tuple[int, int],
                                       valid_sizes: Optional[Tensor]) -> Dict:
        """pre_transformer → forward_encoder → pre_decoder → forward_decoder, the padding given as sizes.

        Args:
            img_feats (tuple[Tensor]): ``num_feature_levels`` maps, each (bs, C, H_l, W_l).
            input_shape (tuple[int, int]): (H, W) of the padded input batch.
            valid_sizes (Tensor, optional): (bs, 2) int64 (h, w) of each image's unpadded part, top left; None
                when no image is padded.

        Returns:
            dict: see :meth:`forward_transformer`.
        """
        encoder_inputs_dict, decoder_inputs_dict = self.pre_transformer(img_feats, input_shape, valid_sizes)
        encoder_outputs_dict = self.forward_encoder(**encoder_inputs_dict)
        tmp_dec_in, head_inputs_dict = self.pre_decoder(**encoder_outputs_dict)
        decoder_inputs_dict.update(tmp_dec_in)
        decoder_outputs_dict = self.forward_decoder(**decoder_inputs_dict)
        head_inputs_dict.update(decoder_outputs_dict)
        return head_inputs_dict

    @staticmethod
    def batch_padding(batch_data_samples: OptSampleList,
                      device: torch.device) -> Tuple[Tuple[int, int], Optional[Tensor]]:
        """The padded input size and each image's valid size, from the data samples.

        Args:
            batch_data_samples (list[DetDataSample]): Give ``batch_input_shape`` and each ``img_shape``.
            device (torch.device): Where the valid sizes go.

        Returns:
            tuple: ``batch_input_shape`` (H, W) and the valid sizes (bs, 2) int64 (h, w), None when no image is
            padded (the transformer then skips the masks).
        """
        if batch_data_samples is None:
            raise ValueError('batch_data_samples with batch_input_shape and img_shape are required')
        input_h, input_w = batch_data_samples[0].batch_input_shape
        img_shapes = [tuple(s.img_shape[:2]) for s in batch_data_samples]
        if all(h == input_h and w == input_w for h, w in img_shapes):
            return (input_h, input_w), None
        return (input_h, input_w), torch.tensor(img_shapes, dtype=torch.long, device=device)

    def pre_transformer(self, mlvl_feats: Tuple[Tensor], input_shape: Tuple[int, int],
                        valid_sizes: Optional[Tensor]) -> Tuple[Dict, Dict]:
        """Flatten the levels, build padding masks, positional embeddings and valid ratios.

        Everything is computed from tensors and sizes, never from values read back into Python, so that the
        detector traces with symbolic batch, height and width (torch.export).

        Args:
            mlvl_feats (tuple[Tensor]): ``num_feature_levels`` maps, each (bs, C, H_l, W_l).
            input_shape (tuple[int, int]): (H, W) of the padded input batch.
            valid_sizes (Tensor, optional): (bs, 2) int64 (h, w) of each image's unpadded part; None when no image
                is padded.

        Returns:
            tuple[dict, dict]: encoder inputs (``feat`` (bs, num_keys, C), ``feat_mask`` (bs, num_keys) or None
            when no image is padded, ``feat_pos``, ``spatial_shapes`` (num_levels, 2), ``level_start_index``,
            ``valid_ratios`` (bs, num_levels, 2)) and the decoder inputs known so far.
        """
        if len(mlvl_feats) != self.num_feature_levels:
            raise ValueError(f'the neck gave {len(mlvl_feats)} feature levels but num_feature_levels is '
                             f'{self.num_feature_levels}')
        bs = mlvl_feats[0].size(0)
        device = mlvl_feats[0].device
        padded = valid_sizes is not None
        if padded:
            input_h, input_w = input_shape
            # (bs, H_l, W_l), True at padding: the input's mask (True beyond each valid size) at the level's size by
            # nearest interpolation, as mmdet (the input row and column each pixel of the level takes)
            mlvl_masks = [(nearest_source(feat.shape[-2], input_h, device)[None, :, None] >= valid_sizes[:, :1, None])
                          | (nearest_source(feat.shape[-1], input_w, device)[None, None, :] >= valid_sizes[:, 1:, None])
                          for feat in mlvl_feats]
            mlvl_pos = [self.positional_encoding(mask) for mask in mlvl_masks]
        else:
            mlvl_masks = [None] * len(mlvl_feats)
            mlvl_pos = [self.positional_encoding(None, input=feat) for feat in mlvl_feats]

        feat_flatten, pos_flatten, mask_flatten = [], [], []
        for lvl, (feat, mask, pos) in enumerate(zip(mlvl_feats, mlvl_masks, mlvl_pos)):
            feat_flatten.append(feat.flatten(2).transpose(1, 2))  # (bs, H_l * W_l, C)
            pos_flatten.append(pos.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1))
            if padded:
                mask_flatten.append(mask.flatten(1))  # (bs, H_l * W_l)
        # (num_levels, 2) (H_l, W_l), from the feature sizes (symbolic under torch.export)
        spatial_shapes = torch.tensor([feat.shape[-2:] for feat in mlvl_feats], dtype=torch.long, device=device)
        level_start_index = torch.cat((spatial_shapes.new_zeros((1, )), spatial_shapes.prod(1).cumsum(0)[:-1]))
        if padded:
            valid_ratios = torch.stack([self.get_valid_ratio(m) for m in mlvl_masks], 1)  # (bs, num_levels, 2)
        else:
            valid_ratios = mlvl_feats[0].new_ones(bs, len(mlvl_feats), 2)
        mask_flatten = torch.cat(mask_flatten, 1) if padded else None
        encoder_inputs_dict = dict(feat=torch.cat(feat_flatten, 1), feat_mask=mask_flatten,
                                   feat_pos=torch.cat(pos_flatten, 1), spatial_shapes=spatial_shapes,
                                   level_start_index=level_start_index, valid_ratios=valid_ratios)
        decoder_inputs_dict = dict(memory_mask=mask_flatten, spatial_shapes=spatial_shapes,
                                   level_start_index=level_start_index, valid_ratios=valid_ratios)
        return encoder_inputs_dict, decoder_inputs_dict

    def forward_encoder(self, feat: Tensor, feat_mask: Optional[Tensor], feat_pos: Tensor, spatial_shapes: Tensor,
                        level_start_index: Tensor, valid_ratios: Tensor) -> Dict:
        """Returns ``memory`` (bs, num_keys, C) with its mask, spatial shapes and valid ratios."""
        memory = self.encoder(query=feat, query_pos=feat_pos, key_padding_mask=feat_mask,
                              spatial_shapes=spatial_shapes, level_start_index=level_start_index,
                              valid_ratios=valid_ratios)
        return dict(memory=memory, memory_mask=feat_mask, spatial_shapes=spatial_shapes, valid_ratios=valid_ratios)

    def pre_decoder(self, memory: Tensor, memory_mask: Optional[Tensor], spatial_shapes: Tensor,
                    valid_ratios: Tensor) -> Tuple[Dict, Dict]:
        """Decoder queries: learned embeddings with ``sigmoid(Linear(pos))`` reference points, or the encoder's
        top proposals in two-stage mode.

        Returns:
            tuple[dict, dict]: decoder inputs (``query``, ``query_pos`` (bs, num_queries, C), ``memory``,
            ``reference_points`` (bs, num_queries, 2 or 4)) and head inputs (``enc_outputs_class``,
            ``enc_outputs_coord``; None unless two-stage; empty at inference).
        """
        bs = memory.size(0)
        if self.as_two_stage:
            num_layers = self.decoder.num_layers
            out = self.proposal_head(memory, memory_mask, spatial_shapes, valid_ratios,
                                     self.bbox_head.cls_branches[num_layers], self.bbox_head.reg_branches[num_layers])
            query, query_pos, reference_points = out['query'], out['query_pos'], out['reference_points']
            enc_outputs_class, enc_outputs_coord = out['enc_outputs_class'], out['enc_outputs_coord']
        else:
            query_pos, query = torch.split(self.query_embedding.weight, self.embed_dims, dim=1)
            query_pos = query_pos.unsqueeze(0).expand(bs, -1, -1)  # (bs, num_queries, C)
            query = query.unsqueeze(0).expand(bs, -1, -1)
            reference_points = self.reference_points_fc(query_pos).sigmoid()  # (bs, num_queries, 2)
            enc_outputs_class = enc_outputs_coord = None
        decoder_inputs_dict = dict(query=query, query_pos=query_pos, memory=memory,
                                   reference_points=reference_points)
        head_inputs_dict = dict(enc_outputs_class=enc_outputs_class,
                                enc_outputs_coord=enc_outputs_coord) if self.training else dict()
        return decoder_inputs_dict, head_inputs_dict

    def forward_decoder(self, query: Tensor, query_pos: Tensor, memory: Tensor, memory_mask: Optional[Tensor],
                        reference_points: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                        valid_ratios: Tensor) -> Dict:
        """Returns ``hidden_states`` (num_layers, bs, num_queries, C) and ``references`` (initial + per layer)."""
        hidden_states, inter_references = self.decoder(
            query=query, query_pos=query_pos, value=memory, key_padding_mask=memory_mask,
            reference_points=reference_points, spatial_shapes=spatial_shapes, level_start_index=level_start_index,
            valid_ratios=valid_ratios, reg_branches=self.bbox_head.reg_branches if self.with_box_refine else None)
        return dict(hidden_states=hidden_states, references=[reference_points, *inter_references])

    @staticmethod
    def get_valid_ratio(mask: Tensor) -> Tensor:
        """Valid (w, h) fraction of a padded level: (bs, H, W) mask, True at padding → (bs, 2)."""
        _, H, W = mask.shape
        valid_h = (~mask[:, :, 0]).sum(1).float() / H
        valid_w = (~mask[:, 0, :]).sum(1).float() / W
        return torch.stack([valid_w, valid_h], -1)


def nearest_source(out_size: int, in_size: int, device: torch.device) -> Tensor:
    """The input index each output index takes in torch's nearest interpolation (``F.interpolate`` with
    ``mode='nearest'``) from ``in_size`` to a level size ``out_size = ceil(in_size / 2**k)`` (what backbones and
    necks give): ``floor(i * in_size / out_size)``, in whole numbers, so that an exported model selects the same
    pixels in every runtime (ONNX's ``Resize`` rounds differently; OpenVINO divides floats by multiplying with the
    reciprocal). ATen computes ``floor(i * float32(in_size / out_size))`` in float32, which gives these indices for
    such sizes (tested up to 4,096 pixels) but not for every ratio (464 to 154: one index lower).

    Returns:
        Tensor: (out_size, ) int64.
    """
    return torch.arange(out_size, device=device) * in_size // out_size


def _proposal_head_keys_to_mmdet(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    """State-dict post hook: ``proposal_head.memory_trans_fc.weight`` → ``memory_trans_fc.weight`` (mmdet's)."""
    head_prefix = prefix + 'proposal_head.'
    for key in [k for k in state_dict if k.startswith(head_prefix)]:
        name = key[len(head_prefix):]
        if name.startswith(_PROPOSAL_HEAD_PARAMS):
            state_dict[prefix + name] = state_dict.pop(key)


def _proposal_head_keys_from_mmdet(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict,
                                   strict: bool, missing_keys: list, unexpected_keys: list, error_msgs: list) -> None:
    """Load-state-dict pre hook, the inverse of :func:`_proposal_head_keys_to_mmdet` (two-stage models only)."""
    if not getattr(module, 'as_two_stage', False):
        return
    for key in [k for k in state_dict if k.startswith(prefix)]:
        name = key[len(prefix):]
        if name.startswith(_PROPOSAL_HEAD_PARAMS):
            state_dict[prefix + 'proposal_head.' + name] = state_dict.pop(key)
