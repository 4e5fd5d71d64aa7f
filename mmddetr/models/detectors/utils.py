"""What our detectors share outside the transformer."""
import torch
from torch import Tensor, nn


def channels_last_on_cpu(batch_inputs: Tensor) -> Tensor:
    """The images channels-last on CPU, else as they are.

    Channels-last is oneDNN's native layout for convolutions: the same values, no layout reorders around every
    convolution and a vectorised max-pool. With torch 2.13 it pays in training as well as at inference: a ResNet-50
    forward about 1.4x faster, the R50 training step at 512x672 4.18 vs 4.57 s (docs/benchmarks.md).
    """
    if batch_inputs.device.type == 'cpu':
        return batch_inputs.contiguous(memory_format=torch.channels_last)
    return batch_inputs


def check_positional_encoding(positional_encoding: nn.Module, embed_dims: int) -> None:
    """The sine encoding gives ``num_feats`` features per coordinate: ``2 * num_feats`` must be the embed dims."""
    if positional_encoding.num_feats * 2 != embed_dims:
        raise ValueError(f'positional_encoding.num_feats * 2 must equal the encoder embed_dims ({embed_dims}), '
                         f'got num_feats={positional_encoding.num_feats}')
