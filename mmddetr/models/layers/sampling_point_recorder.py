"""Where a decoder layer's deformable cross-attention samples: recorded while the detector runs, for visualising."""
import inspect
from typing import NamedTuple, Optional

from torch import Tensor, nn

from .multi_scale_deform_attn import MultiScaleDeformableAttention


class SamplingPoints(NamedTuple):
    """What :class:`SamplingPointRecorder` records of one forward, on the CPU.

    Attributes:
        locations (Tensor): (bs, num_query, num_heads, num_levels, num_points, 2) normalised (x, y) in the padded
            input.
        weights (Tensor): (bs, num_query, num_heads, num_levels, num_points) attention weights, summing to 1 per
            head.
        spatial_shapes (Tensor): (num_levels, 2) int64, (H, W) of each level.
    """
    locations: Tensor
    weights: Tensor
    spatial_shapes: Tensor


class SamplingPointRecorder:
    """Records the sampling points of one decoder layer's cross-attention
    (:meth:`MultiScaleDeformableAttention.sampling_points`) at every forward, on the CPU whatever device the model
    runs on; the latest forward's are :attr:`points`. A context manager: its forward hook is registered on entering
    and removed on exit, so the model runs as before outside it.

    Example::

        with SamplingPointRecorder(detector.decoder) as recorder:
            detector.test_step(data)
        recorder.points.locations  # (bs, num_query, num_heads, num_levels, num_points, 2)

    Args:
        decoder (nn.Module): A decoder whose ``layers`` each have a ``cross_attn`` (mmddetr's
            ``DeformableDetrTransformerDecoder``, ``DinoTransformerDecoder``), the detector's ``decoder``.
        layer (int): Index into ``decoder.layers``. Default: -1, the last layer, whose output the head evaluates.

    Raises:
        TypeError: When that layer's cross-attention is no :class:`MultiScaleDeformableAttention` (mmcv's, for one,
            does not expose its sampling points).
    """

    def __init__(self, decoder: nn.Module, layer: int = -1) -> None:
        attn = decoder.layers[layer].cross_attn
        if not isinstance(attn, MultiScaleDeformableAttention):
            raise TypeError(f'decoder.layers[{layer}].cross_attn: expected mmddetr.MultiScaleDeformableAttention (or '
                            f'a subclass), got {type(attn).__module__}.{type(attn).__name__}')
        self.attn = attn
        self.points: Optional[SamplingPoints] = None
        self._signature = inspect.signature(attn.forward)
        self._handle = None

    def __enter__(self) -> 'SamplingPointRecorder':
        self._handle = self.attn.register_forward_hook(self._record, with_kwargs=True)
        return self

    def __exit__(self, *exc_info) -> None:
        self._handle.remove()
        self._handle = None

    def _record(self, module: MultiScaleDeformableAttention, args: tuple, kwargs: dict, output: Tensor) -> None:
        """The points of the forward's own inputs, as its :meth:`~MultiScaleDeformableAttention.forward` makes
        them: the query plus its positional encoding, batch first."""
        inputs = self._signature.bind(*args, **kwargs).arguments
        query = inputs['query'] if inputs.get('query_pos') is None else inputs['query'] + inputs['query_pos']
        if not module.batch_first:
            query = query.permute(1, 0, 2)  # (bs, num_query, C)
        locations, weights = module.sampling_points(query, inputs['reference_points'], inputs['spatial_shapes'])
        self.points = SamplingPoints(locations.detach().cpu(), weights.detach().cpu(), inputs['spatial_shapes'].cpu())
