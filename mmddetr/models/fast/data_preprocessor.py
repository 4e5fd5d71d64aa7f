"""mmdet's detection data preprocessor, handing the images over channels-last on CPU."""
import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor

from mmddetr.registry import MODELS


@MODELS.register_module()
class ChannelsLastDetDataPreprocessor(DetDataPreprocessor):
    """mmdet's ``DetDataPreprocessor`` (same arguments and values) whose image batch is channels-last on CPU:
    oneDNN's native layout for convolutions, so the backbone runs without layout reorders around every convolution.
    Other devices get the images as mmdet's gives them."""

    def forward(self, data: dict, training: bool = False) -> dict:
        data = super().forward(data, training)
        if data['inputs'].device.type == 'cpu':
            data['inputs'] = data['inputs'].contiguous(memory_format=torch.channels_last)
        return data
