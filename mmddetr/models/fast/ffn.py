"""mmcv's FFN with the CPU's faster dropout masks and a ReLU in place only where autograd does not record it."""
import torch
import torch.nn.functional as F
from mmcv.cnn.bricks.transformer import FFN
from torch import Tensor, nn

from mmddetr.registry import MODELS
from .dropout import FastDropout


class GradAwareReLU(nn.ReLU):
    """ReLU in place only where autograd does not record it: in place on a Linear's output (a view), autograd
    records a copy of the slices in training; out of place, inference writes a fresh activation-sized buffer."""

    def forward(self, input: Tensor) -> Tensor:
        return F.relu(input, inplace=self.inplace and not (torch.is_grad_enabled() and input.requires_grad))


@MODELS.register_module()
class FastFFN(FFN):
    """mmcv's ``FFN`` (same arguments, parameters, initialisation and maths) whose dropouts after the Linear layers
    are :class:`FastDropout` and whose ReLU is :class:`GradAwareReLU`. ``dropout_layer`` stays mmcv's."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for block in [self.layers, *(m for m in self.layers if isinstance(m, nn.Sequential))]:
            for i, m in enumerate(block):
                if type(m) is nn.Dropout:
                    block[i] = FastDropout(m.p)
                elif type(m) is nn.ReLU:
                    block[i] = GradAwareReLU(m.inplace)
