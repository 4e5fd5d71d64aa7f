"""``nn.Dropout`` on mmddetr's counter-based CPU dropout."""
from torch import Tensor, nn

from mmddetr.ops import dropout
from mmddetr.registry import MODELS


@MODELS.register_module()
class FastDropout(nn.Dropout):
    """``nn.Dropout`` (same keep probability and scaling) whose CPU mask is a counter-based hash of one seed instead
    of per-element Bernoulli draws, which are slow on CPU (:func:`mmddetr.ops.dropout`); other devices use torch's.
    No parameters or buffers, so state dicts are unchanged."""

    def forward(self, input: Tensor) -> Tensor:
        return dropout(input, self.p, self.training)
