"""DINO's decoder (arXiv 2203.03605) on mmddetr's decoder layers."""
from mmdet.models.layers import MLP
from mmdet.models.layers import DinoTransformerDecoder as MmdetDinoTransformerDecoder
from mmengine.model import ModuleList
from torch import nn

from mmddetr.registry import MODELS
from .builder import build_from_cfg_or_default
from .deformable_detr_decoder import DeformableDetrTransformerDecoderLayer


@MODELS.register_module()
class DinoTransformerDecoder(MmdetDinoTransformerDecoder):
    """mmdet 3.3.0's ``DinoTransformerDecoder`` (query positions from the sine-encoded reference boxes, "look forward
    twice", a final norm on every layer's output) with :class:`DeformableDetrTransformerDecoderLayer` as its layers:
    the same arguments, parameter names and maths as mmdet's layers, with mmddetr's attention.

    Args:
        num_layers (int): Number of layers (6 in DINO).
        layer_cfg (dict): Config of every layer (mmdet's keys); ``type`` defaults to
            ``mmddetr.DeformableDetrTransformerDecoderLayer``.
        post_norm_cfg (dict, optional): Must be None, as mmdet's DINO configs set it (the final norm is ``norm``).
        return_intermediate (bool): Return every layer's output. Default: True.
        init_cfg (dict, optional): Initialisation config.
    """

    def _init_layers(self) -> None:
        """The layers, then mmdet's ``ref_point_head`` (sine-encoded boxes to query positions) and ``norm``."""
        if self.post_norm_cfg is not None:
            raise ValueError(f'post_norm_cfg must be None: DINO\'s decoder normalises with its own norm, '
                             f'got {self.post_norm_cfg}')
        self.layers = ModuleList([
            build_from_cfg_or_default(self.layer_cfg, DeformableDetrTransformerDecoderLayer)
            for _ in range(self.num_layers)
        ])
        self.embed_dims = self.layers[0].embed_dims
        self.ref_point_head = MLP(self.embed_dims * 2, self.embed_dims, self.embed_dims, 2)
        self.norm = nn.LayerNorm(self.embed_dims)
