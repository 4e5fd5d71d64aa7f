"""``mmddetr::dropout``: dropout with a counter-based mask, compiled for CPU (torch's own dropout elsewhere)."""
import torch
import torch.nn.functional as F
from torch import Tensor

from .ms_deform_attn import _EXTENSION_ERROR

_OP = 'mmddetr::dropout'
_HAS_CPU_KERNEL = _EXTENSION_ERROR is None and torch._C._dispatch_has_kernel_for_dispatch_key(_OP, 'CPU')

if _HAS_CPU_KERNEL:

    @torch.library.register_fake(_OP)
    def _fake(input, p, seed):
        return torch.empty_like(input, memory_format=torch.contiguous_format)

    def _setup_context(ctx, inputs, output):
        _, ctx.p, ctx.seed = inputs

    def _backward(ctx, grad_output):
        # the mask is a function of (seed, element index): the gradient goes through the same mask and scale
        return torch.ops.mmddetr.dropout(grad_output, ctx.p, ctx.seed), None, None

    torch.library.register_autograd(_OP, _backward, setup_context=_setup_context)


def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Same as ``torch.nn.functional.dropout(input, p, training)`` in distribution: each element is zeroed with
    probability p and the others are scaled by 1 / (1 - p).

    On CPU the mask comes from a counter-based hash of a seed drawn from torch's default generator (so
    ``torch.manual_seed`` makes it reproducible, for any number of threads) instead of torch's per-element Bernoulli
    draws, several times faster; nothing but the seed is kept for the backward (its kernel variant follows
    ``MMDDETR_CPU_KERNEL``, see :mod:`mmddetr.ops.ms_deform_attn`). Other devices, and code being compiled by
    ``torch.compile``, use torch's dropout.
    """
    if not 0 <= p <= 1:
        raise ValueError(f'p: expected a dropout probability in [0, 1], got {p}')
    if not training or p == 0:
        return input
    if not _HAS_CPU_KERNEL or input.device.type != 'cpu' or torch.compiler.is_compiling():
        return F.dropout(input, p, training)
    seed = int(torch.empty((), dtype=torch.int64).random_())
    return torch.ops.mmddetr.dropout(input, p, seed)
