"""mmcv's MultiheadAttention without the attention weights nobody reads."""
from typing import Optional, Tuple

import torch
from mmcv.cnn.bricks.transformer import MultiheadAttention
from torch import Tensor, nn

from mmddetr.registry import MODELS


class OutputOnlyMultiheadAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` whose ``need_weights`` defaults to False: it returns ``(output, None)`` and runs
    torch's fused scaled-dot-product attention instead of materialising, soft-maxing and averaging the
    (bs * num_heads, num_queries, num_keys) weights. Same parameters and maths."""

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Optional[Tensor] = None,
                need_weights: bool = False, attn_mask: Optional[Tensor] = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
        return super().forward(query, key, value, key_padding_mask=key_padding_mask, need_weights=need_weights,
                               attn_mask=attn_mask, average_attn_weights=average_attn_weights, is_causal=is_causal)

    @classmethod
    def holding(cls, attn: nn.MultiheadAttention) -> 'OutputOnlyMultiheadAttention':
        """One with the settings of ``attn`` holding its parameters. Built on the meta device and handed the tensors,
        so it draws no random numbers: a seeded model initialises as it does with ``attn``."""
        with torch.device('meta'):
            module = cls(attn.embed_dim, attn.num_heads, attn.dropout, bias=attn.in_proj_bias is not None,
                         add_bias_kv=attn.bias_k is not None, add_zero_attn=attn.add_zero_attn, kdim=attn.kdim,
                         vdim=attn.vdim, batch_first=attn.batch_first)
        module.load_state_dict(attn.state_dict(), strict=True, assign=True)
        return module


@MODELS.register_module()
class FastMultiheadAttention(MultiheadAttention):
    """mmcv's ``MultiheadAttention`` (same arguments, parameter names ``attn.in_proj_weight``..., initialisation and
    maths) whose inner attention is :class:`OutputOnlyMultiheadAttention`: mmcv's module reads only the output.

    Training with ``attn_drop`` draws its dropout inside the fused kernel: the same probability, other masks than
    mmcv's for the same seed.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.attn = OutputOnlyMultiheadAttention.holding(self.attn)
