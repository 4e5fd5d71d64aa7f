"""mmddetr's multi-scale deformable attention with the CPU's faster dropout masks."""
from mmddetr.models.layers import MultiScaleDeformableAttention
from mmddetr.registry import MODELS
from .dropout import FastDropout


@MODELS.register_module()
class FastMultiScaleDeformableAttention(MultiScaleDeformableAttention):
    """:class:`MultiScaleDeformableAttention` (same arguments, parameters and maths) whose output dropout is
    :class:`FastDropout`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dropout = FastDropout(self.dropout.p)
