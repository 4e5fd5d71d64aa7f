"""Validation of the op's inputs: a ``ValueError`` that names the argument and what was expected."""
import torch
from torch import Tensor

# The kernels index with int64, except within one level (CPU: int32 pixel offsets) and the CUDA kernels' per-item
# counts (int32 heads, head dims and samples).
INT32_MAX = 2**31 - 1


def _shape(t: Tensor) -> tuple:
    return tuple(t.shape)


def _require(condition: bool, argument: str, expected: str, got) -> None:
    if not condition:
        raise ValueError(f'multi_scale_deformable_attn: {argument} must be {expected}, got {got}')


def check_inputs(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor, sampling_locations: Tensor,
                 attention_weights: Tensor, im2col_step: int, check_values: bool) -> None:
    """Checks ranks, shapes, dtypes and devices; with ``check_values`` also the level sizes (a host sync on GPU)."""
    named = dict(value=value, spatial_shapes=spatial_shapes, level_start_index=level_start_index,
                 sampling_locations=sampling_locations, attention_weights=attention_weights)
    for name, tensor in named.items():
        _require(isinstance(tensor, Tensor), name, 'a torch.Tensor', type(tensor).__name__)
    _require(value.dim() == 4, 'value', 'a 4-d tensor (bs, num_keys, num_heads, head_dims)', _shape(value))
    _require(value.is_floating_point(), 'value', 'a floating-point tensor', value.dtype)
    bs, num_keys, num_heads, _ = value.shape
    _require(spatial_shapes.dim() == 2 and spatial_shapes.shape[1] == 2, 'spatial_shapes',
             'a (num_levels, 2) tensor of (H, W)', _shape(spatial_shapes))
    num_levels = spatial_shapes.shape[0]
    _require(num_levels > 0, 'spatial_shapes', 'at least one level', _shape(spatial_shapes))
    for name in ('spatial_shapes', 'level_start_index'):
        _require(named[name].dtype == torch.int64, name, 'an int64 tensor', named[name].dtype)
    _require(_shape(level_start_index) == (num_levels,), 'level_start_index', f'of shape ({num_levels},)',
             _shape(level_start_index))
    _require(sampling_locations.dim() == 6, 'sampling_locations',
             f'a 6-d tensor ({bs}, num_queries, {num_heads}, {num_levels}, num_points, 2)',
             _shape(sampling_locations))
    num_queries, num_points = sampling_locations.shape[1], sampling_locations.shape[4]
    expected = (bs, num_queries, num_heads, num_levels, num_points)
    _require(_shape(sampling_locations) == expected + (2,), 'sampling_locations', f'of shape {expected + (2,)}',
             _shape(sampling_locations))
    _require(_shape(attention_weights) == expected, 'attention_weights', f'of shape {expected}',
             _shape(attention_weights))
    for name in ('sampling_locations', 'attention_weights'):
        _require(named[name].is_floating_point(), name, 'a floating-point tensor', named[name].dtype)
        _require(named[name].device == value.device, name, f"on value's device {value.device}", named[name].device)
    for name in ('spatial_shapes', 'level_start_index'):
        _require(named[name].device == value.device, name, f"on value's device {value.device}", named[name].device)
    _require(isinstance(im2col_step, int) and im2col_step > 0, 'im2col_step', 'a positive int', im2col_step)
    _check_int32_counts(value, sampling_locations)
    if check_values:
        _require(value.device.type != 'meta', 'value', 'on a device with data to check the levels (meta tensors '
                 'have none; torch.compile and torch.export trace shapes only)', value.device)
        _check_levels(spatial_shapes, level_start_index, num_keys)


def _check_int32_counts(value: Tensor, sampling_locations: Tensor) -> None:
    _require(value.shape[2] <= INT32_MAX and value.shape[3] <= INT32_MAX, 'value',
             'of at most 2**31 - 1 heads and head dims (the CUDA kernels count them in int32)', _shape(value))
    _require(sampling_locations.shape[3] * sampling_locations.shape[4] <= INT32_MAX, 'sampling_locations',
             'of at most 2**31 - 1 levels x points (the CUDA kernels count them in int32)',
             _shape(sampling_locations))


def _check_levels(spatial_shapes: Tensor, level_start_index: Tensor, num_keys: int) -> None:
    shapes = spatial_shapes.tolist()
    _require(all(h > 0 and w > 0 for h, w in shapes), 'spatial_shapes', 'positive (H, W) on every level', shapes)
    _require(all(h * w <= INT32_MAX for h, w in shapes), 'spatial_shapes',
             'at most 2**31 - 1 pixels (H*W) per level (the CPU kernel indexes within a level in int32)', shapes)
    sizes = [h * w for h, w in shapes]
    _require(sum(sizes) == num_keys, 'spatial_shapes', f"levels whose H*W sum to value's num_keys {num_keys}",
             f'{shapes} (sum {sum(sizes)})')
    starts = [sum(sizes[:level]) for level in range(len(sizes))]
    _require(level_start_index.tolist() == starts, 'level_start_index',
             f'the cumulative H*W of spatial_shapes {starts}', level_start_index.tolist())
