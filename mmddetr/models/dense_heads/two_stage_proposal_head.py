"""Two-stage query selection of Deformable DETR (arXiv 2010.04159, A.4): encoder pixels as proposals, top-k as
queries."""
import math
from typing import Dict, Optional, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmddetr.models.layers import key_centres, key_pixels, pixel_centres
from mmddetr.registry import MODELS


@MODELS.register_module()
class TwoStageProposalHead(BaseModule):
    """Turns the encoder memory into decoder queries.

    Every encoder pixel of level l is a proposal centred on it with width and height ``0.05 * 2**l``; a proposal is
    valid when its four values lie in (0.01, 0.99) and its pixel is not padding (the centre's bounds decided in whole
    pixels of the level's valid size w, ``0.01 w < j + 0.5 < 0.99 w``: mmdet's validity, whatever a runtime's
    division rounds). The memory (zeroed where invalid) goes through ``Linear + LN``; the detector's extra class and
    box branches score it and regress the proposals; the ``num_proposals`` best by class channel 0 become the
    reference boxes (detached), and a sine embedding of each box through ``Linear + LN`` gives its positional and
    content query.

    Args:
        embed_dims (int): Channels C of the memory and queries. Default: 256.
        num_proposals (int): Number of selected proposals (decoder queries); all encoder pixels when the images
            have fewer. Default: 300.
        temperature (int): Temperature of the box sine embedding. Default: 10000.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_proposals: int = 300,
                 temperature: int = 10000,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if embed_dims % 2 != 0:
            raise ValueError(f'embed_dims must be even (C / 2 sine features per box coordinate), got {embed_dims}')
        self.embed_dims = embed_dims
        self.num_proposals = num_proposals
        self.temperature = temperature
        self.memory_trans_fc = nn.Linear(embed_dims, embed_dims)
        self.memory_trans_norm = nn.LayerNorm(embed_dims)
        self.pos_trans_fc = nn.Linear(embed_dims * 2, embed_dims * 2)
        self.pos_trans_norm = nn.LayerNorm(embed_dims * 2)

    def init_weights(self) -> None:
        """Xavier-uniform projection weights, as the official transformer's ``_reset_parameters``."""
        super().init_weights()
        nn.init.xavier_uniform_(self.memory_trans_fc.weight)
        nn.init.xavier_uniform_(self.pos_trans_fc.weight)

    def forward(self, memory: Tensor, memory_mask: Optional[Tensor], spatial_shapes: Tensor, valid_ratios: Tensor,
                cls_branch: nn.Module, reg_branch: nn.Module) -> Dict[str, Tensor]:
        """
        Args:
            memory (Tensor): (bs, num_keys, C) encoder output.
            memory_mask (Tensor, optional): (bs, num_keys), True at padded pixels.
            spatial_shapes (Tensor): (num_levels, 2) int64 (H_l, W_l).
            valid_ratios (Tensor): (bs, num_levels, 2) valid (w, h) fraction of every level.
            cls_branch (nn.Module): Scores the proposals, C -> num_classes; channel 0 ranks them.
            reg_branch (nn.Module): Regresses the proposals in logit space, C -> 4.

        Returns:
            dict: ``query`` and ``query_pos`` (bs, num_proposals, C); ``reference_points`` (bs, num_proposals, 4)
            selected boxes (cx, cy, w, h), detached; ``enc_outputs_class`` (bs, num_keys, num_classes) and
            ``enc_outputs_coord`` (bs, num_keys, 4) for the encoder loss.
        """
        output_memory, output_proposals = self.gen_encoder_output_proposals(memory, memory_mask, spatial_shapes,
                                                                            valid_ratios)
        enc_outputs_class = cls_branch(output_memory)  # (bs, num_keys, num_classes)
        enc_outputs_coord_unact = reg_branch(output_memory) + output_proposals  # (bs, num_keys, 4)
        # small images have fewer pixels than queries (sym_min: no guard on the symbolic size under torch.export;
        # under torch.jit.trace, mmengine's FLOP counter's, the size is a tensor)
        num_keys = memory.size(1)
        num_proposals = (num_keys.clamp(max=self.num_proposals) if isinstance(num_keys, Tensor) else
                         torch.sym_min(self.num_proposals, num_keys))
        topk = torch.topk(enc_outputs_class[..., 0], num_proposals, dim=1)[1]  # (bs, num_proposals)
        topk_coords_unact = torch.gather(enc_outputs_coord_unact, 1, topk.unsqueeze(-1).expand(-1, -1, 4)).detach()
        pos_trans_out = self.pos_trans_norm(self.pos_trans_fc(self.get_proposal_pos_embed(topk_coords_unact)))
        query_pos, query = torch.split(pos_trans_out, self.embed_dims, dim=2)  # 2 x (bs, num_proposals, C)
        return dict(query=query, query_pos=query_pos, reference_points=topk_coords_unact.sigmoid(),
                    enc_outputs_class=enc_outputs_class, enc_outputs_coord=enc_outputs_coord_unact.sigmoid())

    def gen_encoder_output_proposals(self, memory: Tensor, memory_mask: Optional[Tensor], spatial_shapes: Tensor,
                                     valid_ratios: Tensor) -> Tuple[Tensor, Tensor]:
        """One proposal per encoder pixel.

        Args:
            memory (Tensor): (bs, num_keys, C).
            memory_mask (Tensor, optional): (bs, num_keys), True at padded pixels.
            spatial_shapes (Tensor): (num_levels, 2) int64 (H_l, W_l).
            valid_ratios (Tensor): (bs, num_levels, 2) valid (w, h) fraction of every level.

        Returns:
            tuple[Tensor, Tensor]: transformed memory (bs, num_keys, C), zero-input where invalid; proposals in
            logit space (bs, num_keys, 4) (cx, cy, w, h), +inf where invalid or padded.
        """
        num_keys = memory.shape[1]
        centres = pixel_centres(spatial_shapes, valid_ratios, num_keys)  # (bs, num_keys, 2)
        level = key_pixels(spatial_shapes, num_keys)[0]  # (num_keys, )
        wh = 0.05 * torch.pow(2.0, level).to(centres.dtype)  # (num_keys, ) 0.05 * 2**l, exact powers of 2
        proposals = torch.cat((centres, wh[None, :, None].expand(centres.shape)), -1)  # (bs, num_keys, 4)
        # all four values in (0.01, 0.99), the centres' bounds in pixels of the valid size in whole pixels, where no
        # division's last bit decides: a valid size of 50 puts row 49's centre on 0.99 (49.5 / 50, invalid in
        # mmdet), and OpenVINO, dividing by multiplying with the reciprocal, put it inside
        pixels, valid_size = key_centres(spatial_shapes, valid_ratios, num_keys)  # (num_keys, 2), (bs, num_keys, 2)
        valid_size = valid_size.round()  # whole pixels (valid_ratio * H_l is one off in its last bit for some sizes)
        valid = ((pixels > 0.01 * valid_size) & (pixels < 0.99 * valid_size)).all(-1, keepdim=True)
        valid = valid & ((wh > 0.01) & (wh < 0.99))[None, :, None]  # (bs, num_keys, 1)
        if memory_mask is not None:
            valid = valid & ~memory_mask.unsqueeze(-1)
        proposals = torch.log(proposals / (1 - proposals)).masked_fill(~valid, float('inf'))
        output_memory = memory.masked_fill(~valid, 0.)
        output_memory = self.memory_trans_norm(self.memory_trans_fc(output_memory))
        return output_memory, proposals

    def get_proposal_pos_embed(self, proposals: Tensor) -> Tensor:
        """Sine embedding of boxes, C / 2 features per coordinate.

        Args:
            proposals (Tensor): (bs, num_proposals, 4) boxes in logit space.

        Returns:
            Tensor: (bs, num_proposals, 2C), the sin/cos pairs of cx, cy, w, h in turn.
        """
        num_pos_feats = self.embed_dims // 2
        dim_t = torch.arange(num_pos_feats, dtype=torch.float32, device=proposals.device)
        dim_t = self.temperature**(2 * (dim_t // 2) / num_pos_feats)
        pos = proposals.sigmoid()[..., None] * (2 * math.pi) / dim_t  # (bs, nq, 4, C / 2)
        return torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=4).flatten(2)
