"""mmcv's FFN with the CPU's faster dropout masks and a ReLU in place only where autograd does not record it."""
from typing import Optional

import torch
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer
from mmcv.cnn.bricks.drop import build_dropout
from mmcv.cnn.bricks.transformer import LayerScale
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmddetr.registry import MODELS
from .fast_dropout import FastDropout


class GradAwareReLU(nn.ReLU):
    """ReLU in place only where autograd does not record it.

    The FFN's ReLU applies to a Linear's output: in place in training, autograd records a copy of the slices, which
    costs a third of the FFN's CPU training time; out of place costs that much in inference instead (a fresh
    activation-sized buffer). Same maths either way.
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.relu(input, inplace=self.inplace and not (torch.is_grad_enabled() and input.requires_grad))


@MODELS.register_module()
class FastFFN(BaseModule):
    """mmcv's ``FFN``: same arguments, parameter names (``layers.0.0.weight``...) and maths, with two speed paths.

    - Dropout (``ffn_drop``) is :class:`FastDropout`: the same keep probability and scaling, masks from a
      counter-based hash on CPU (several times faster than per-element Bernoulli draws).
    - An in-place ReLU (``act_cfg=dict(type='ReLU', inplace=True)``, mmcv's default) is :class:`GradAwareReLU`.

    Args:
        embed_dims (int): Input and output channels. Default: 256.
        feedforward_channels (int): Hidden channels. Default: 1024.
        num_fcs (int): Linear layers, at least 2. Default: 2.
        act_cfg (dict): Activation after every Linear but the last. Default: ``dict(type='ReLU', inplace=True)``.
        ffn_drop (float): Dropout after every Linear. Default: 0.
        dropout_layer (dict, optional): Dropout on the output before the residual (mmcv's ``build_dropout``).
        add_identity (bool): Add the residual. Default: True.
        init_cfg (dict, optional): Initialisation config.
        layer_scale_init_value (float): mmcv's ``LayerScale`` on the output when positive. Default: 0.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 feedforward_channels: int = 1024,
                 num_fcs: int = 2,
                 act_cfg: dict = dict(type='ReLU', inplace=True),
                 ffn_drop: float = 0.,
                 dropout_layer: Optional[dict] = None,
                 add_identity: bool = True,
                 init_cfg: Optional[dict] = None,
                 layer_scale_init_value: float = 0.) -> None:
        super().__init__(init_cfg)
        if num_fcs < 2:
            raise ValueError(f'num_fcs must be at least 2, got {num_fcs}')
        self.embed_dims = embed_dims
        self.feedforward_channels = feedforward_channels
        self.num_fcs = num_fcs
        layers, in_channels = [], embed_dims
        for _ in range(num_fcs - 1):
            act = (GradAwareReLU(act_cfg.get('inplace', False)) if act_cfg['type'] in ('ReLU', nn.ReLU) else
                   build_activation_layer(act_cfg))
            layers.append(nn.Sequential(nn.Linear(in_channels, feedforward_channels), act, FastDropout(ffn_drop)))
            in_channels = feedforward_channels
        layers += [nn.Linear(feedforward_channels, embed_dims), FastDropout(ffn_drop)]
        self.layers = nn.Sequential(*layers)
        self.dropout_layer = build_dropout(dropout_layer) if dropout_layer else nn.Identity()
        self.add_identity = add_identity
        self.gamma2 = LayerScale(embed_dims, scale=layer_scale_init_value) if layer_scale_init_value > 0 else \
            nn.Identity()

    def forward(self, x: Tensor, identity: Optional[Tensor] = None) -> Tensor:
        """(..., embed_dims) → (..., embed_dims), plus ``identity`` (``x`` when None) with ``add_identity``."""
        out = self.dropout_layer(self.gamma2(self.layers(x)))
        if not self.add_identity:
            return out
        return (x if identity is None else identity) + out
