"""``nn.Dropout`` on mmddetr's counter-based CPU dropout, and a helper that swaps it in."""
from torch import Tensor, nn

from mmddetr.ops import dropout
from mmddetr.registry import MODELS


@MODELS.register_module()
class FastDropout(nn.Dropout):
    """``nn.Dropout`` with the same keep probability and scaling, whose CPU mask is a counter-based hash instead of
    per-element Bernoulli draws (several times faster; see :func:`mmddetr.ops.dropout`). Other devices use torch's.
    No parameters or buffers, so state dicts are unchanged."""

    def forward(self, input: Tensor) -> Tensor:
        return dropout(input, self.p, self.training)


def use_fast_dropout(module: nn.Module) -> nn.Module:
    """Replace every ``nn.Dropout`` inside ``module`` whose forward is torch's (plain ones, and mmcv's ``Dropout``
    of ``dropout_layer`` configs, in its FFN and MultiheadAttention) by :class:`FastDropout` with the same ``p``;
    returns ``module``."""
    for name, child in module.named_children():
        if isinstance(child, nn.Dropout) and type(child).forward is nn.Dropout.forward:
            setattr(module, name, FastDropout(child.p))
        else:
            use_fast_dropout(child)
    return module
