"""mmcv's MultiheadAttention without the attention weights nobody reads."""
from typing import Optional, Tuple

from mmcv.cnn.bricks.transformer import MultiheadAttention
from torch import Tensor, nn

from mmddetr.registry import MODELS


class OutputOnlyMultiheadAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` whose ``need_weights`` defaults to False: it returns ``(output, None)`` and runs
    torch's fused scaled-dot-product attention, instead of materialising, returning and averaging the
    (bs * num_heads, num_queries, num_keys) weights (with the decoder's 1,092 training queries of DINO, 76 MB per
    layer written, soft-maxed and copied again). Same parameters and maths."""

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Optional[Tensor] = None,
                need_weights: bool = False, attn_mask: Optional[Tensor] = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
        return super().forward(query, key, value, key_padding_mask=key_padding_mask, need_weights=need_weights,
                               attn_mask=attn_mask, average_attn_weights=average_attn_weights, is_causal=is_causal)


@MODELS.register_module()
class FastMultiheadAttention(MultiheadAttention):
    """mmcv's ``MultiheadAttention`` (same arguments, parameter names ``attn.in_proj_weight``... and maths) whose
    inner attention is :class:`OutputOnlyMultiheadAttention`: mmcv's module reads only the output, so the weights
    need not be computed as a separate tensor.

    The self-attention of :class:`DeformableDetrTransformerDecoderLayer` by default. Training with ``attn_drop``
    draws its dropout inside the fused kernel: the same probability, other masks than mmcv's for the same seed.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # the module mmcv built, same state, with need_weights off by default (a subclass adding only that default)
        self.attn.__class__ = OutputOnlyMultiheadAttention
