"""What our detectors share outside the transformer."""
import torch
from torch import Tensor, nn


def channels_last_on_cpu_inference(batch_inputs: Tensor) -> Tensor:
    """The images channels-last on CPU without autograd (inference, validation), else as they are.

    Channels-last is oneDNN's native layout for convolutions: the same values, about 1.4x faster through a ResNet-50
    on CPU. With autograd its backward is slower, so training keeps the default layout.
    """
    if batch_inputs.device.type == 'cpu' and not torch.is_grad_enabled():
        return batch_inputs.contiguous(memory_format=torch.channels_last)
    return batch_inputs


def check_positional_encoding(positional_encoding: nn.Module, embed_dims: int) -> None:
    """The sine encoding gives ``num_feats`` features per coordinate: ``2 * num_feats`` must be the embed dims."""
    if positional_encoding.num_feats * 2 != embed_dims:
        raise ValueError(f'positional_encoding.num_feats * 2 must equal the encoder embed_dims ({embed_dims}), '
                         f'got num_feats={positional_encoding.num_feats}')
