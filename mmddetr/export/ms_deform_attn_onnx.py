"""``mmddetr::ms_deform_attn`` in standard ONNX operators: gathers and arithmetic, no GridSample and no custom op, so
ONNX Runtime, OpenVINO and TensorRT can all run it. Imports onnxscript (the ``export`` extra).

The semantics are the op's (``grid_sample(align_corners=False, padding_mode='zeros')``, see
:func:`mmddetr.ops.multi_scale_deformable_attn_pytorch`): a location (x, y) of level l is the pixel coordinate
``(x * W_l - 0.5, y * H_l - 0.5)``, read bilinearly from its four neighbouring pixels; a neighbour outside the map,
and every neighbour of a NaN or infinite location, reads 0.

How, in two gathers: first a table of every 2x2 patch of every level, including those that overhang the border by
one pixel (whose outside pixels are zeros), per head: ``(bs, num_heads, num_patches, 4 * head_dims)``, with
``num_patches = sum of (H_l + 1) * (W_l + 1)``, about the number of keys. Then one row of that table per sampling
point (its patch has the top-left neighbour ``floor(x), floor(y)``) and the weighted sum of the four pixels of all
points in one batched ``MatMul`` (a row of weights times the rows of pixels, per query and head). Gathering patches rather than pixels takes four times fewer (and four times wider)
gathers, and a point whose patch lies off the map is given weight 0, so no pixel needs a check of its own.
"""
from onnxscript import opset18 as op

INT64 = 7  # onnx.TensorProto.INT64, for Cast


def _ints(*values):
    """An int64 vector constant (Concat's inputs need typed values, not Python lists)."""
    return op.Constant(value_ints=list(values))


def _patch_corner_keys(spatial_shapes, level_start_index, num_keys):
    """Keys of the four pixels of every patch, ``(num_patches, 4)`` int64, pixels off the map as ``num_keys`` (a
    zero row appended to the value); and the first patch of each level, ``(num_levels, )``.

    Patch (r, c) of level l (r in [0, H_l], c in [0, W_l]) covers rows r - 1, r and columns c - 1, c; patches are
    numbered level by level, rows first.
    """
    height = op.Gather(spatial_shapes, op.Constant(value_int=0), axis=1)  # (num_levels, )
    width = op.Gather(spatial_shapes, op.Constant(value_int=1), axis=1)
    patches_per_level = op.Mul(op.Add(height, 1), op.Add(width, 1))  # (num_levels, )
    patch_start = op.Sub(op.CumSum(patches_per_level, 0), patches_per_level)  # (num_levels, )
    patch = op.Range(0, op.ReduceSum(patches_per_level, keepdims=0), 1)  # (num_patches, )
    # level of each patch: the number of levels starting at or before it, minus one
    level = op.Sub(op.ReduceSum(op.Cast(op.GreaterOrEqual(op.Unsqueeze(patch, [1]), patch_start), to=INT64), [1],
                                keepdims=0), 1)
    patch_in_level = op.Sub(patch, op.Gather(patch_start, level))
    level_h, level_w = op.Gather(height, level), op.Gather(width, level)  # (num_patches, )
    bottom = op.Div(patch_in_level, op.Add(level_w, 1))  # row r of the patch's lower pixels
    right = op.Mod(patch_in_level, op.Add(level_w, 1))  # column c of its right pixels
    # (num_patches, 4): rows (r - 1, r - 1, r, r) and columns (c - 1, c, c - 1, c)
    rows = op.Add(op.Unsqueeze(bottom, [1]), op.Constant(value_ints=[-1, -1, 0, 0]))
    cols = op.Add(op.Unsqueeze(right, [1]), op.Constant(value_ints=[-1, 0, -1, 0]))
    on_map = op.And(op.And(op.GreaterOrEqual(rows, 0), op.Less(rows, op.Unsqueeze(level_h, [1]))),
                    op.And(op.GreaterOrEqual(cols, 0), op.Less(cols, op.Unsqueeze(level_w, [1]))))
    keys = op.Add(op.Unsqueeze(op.Gather(level_start_index, level), [1]),
                  op.Add(op.Mul(rows, op.Unsqueeze(level_w, [1])), cols))
    return op.Where(on_map, keys, num_keys), patch_start


def ms_deform_attn_onnx(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    """ONNX translation of ``torch.ops.mmddetr.ms_deform_attn.default`` (for ``torch.onnx.export``'s
    ``custom_translation_table``); onnxscript values in, the output value out.

    Args:
        value: (bs, num_keys, num_heads, head_dims) float.
        spatial_shapes: (num_levels, 2) int64 (H_l, W_l).
        level_start_index: (num_levels, ) int64.
        sampling_locations: (bs, num_queries, num_heads, num_levels, num_points, 2) normalised (x, y).
        attention_weights: (bs, num_queries, num_heads, num_levels, num_points).

    Returns:
        (bs, num_queries, num_heads * head_dims), value's dtype.
    """
    value_shape = op.Shape(value)
    bs, num_keys = op.Slice(value_shape, [0], [1]), op.Slice(value_shape, [1], [2])  # (1, ) each
    num_heads, head_dims = op.Slice(value_shape, [2], [3]), op.Slice(value_shape, [3], [4])
    corner_keys, patch_start = _patch_corner_keys(spatial_shapes, level_start_index, op.Squeeze(num_keys))
    # the patch table: (bs, num_heads, num_keys + 1, head_dims) with a zero row last, then the four pixels of
    # every patch side by side, (bs * num_heads * num_patches, 4 * head_dims)
    zero_row = op.Expand(op.CastLike(0.0, value), op.Concat(bs, _ints(1), num_heads, head_dims, axis=0))
    value = op.Transpose(op.Concat(value, zero_row, axis=1), perm=[0, 2, 1, 3])
    table = op.Reshape(op.Gather(value, corner_keys, axis=2), op.Concat(_ints(-1), op.Mul(head_dims, 4), axis=0))
    num_patches = op.Shape(corner_keys, start=0, end=1)

    # pixel coordinates of the points, (bs, num_queries, num_heads, num_levels, num_points)
    level_shape = [1, 1, 1, -1, 1]  # a level's constant against the points
    height = op.Reshape(op.Gather(spatial_shapes, op.Constant(value_int=0), axis=1), level_shape)  # int64
    width = op.Reshape(op.Gather(spatial_shapes, op.Constant(value_int=1), axis=1), level_shape)
    locations = op.CastLike(sampling_locations, value)
    half = op.CastLike(0.5, value)
    x = op.Sub(op.Mul(op.Gather(locations, op.Constant(value_int=0), axis=5), op.CastLike(width, value)), half)
    y = op.Sub(op.Mul(op.Gather(locations, op.Constant(value_int=1), axis=5), op.CastLike(height, value)), half)
    x0, y0 = op.Floor(x), op.Floor(y)  # top-left neighbour
    # the patch touches the map: -1 <= x0 < W_l and -1 <= y0 < H_l (False for NaN and infinite locations)
    minus_one = op.CastLike(-1.0, value)
    on_map = op.And(op.And(op.GreaterOrEqual(x0, minus_one), op.Less(x0, op.CastLike(width, value))),
                    op.And(op.GreaterOrEqual(y0, minus_one), op.Less(y0, op.CastLike(height, value))))
    zero = op.CastLike(0.0, value)
    column = op.Cast(op.Where(on_map, op.Sub(x0, minus_one), zero), to=INT64)  # c = x0 + 1
    row = op.Cast(op.Where(on_map, op.Sub(y0, minus_one), zero), to=INT64)  # r = y0 + 1
    patch = op.Add(op.Reshape(patch_start, level_shape), op.Add(op.Mul(row, op.Add(width, 1)), column))
    # table row: (b * num_heads + m) * num_patches + patch
    batch_head = op.Add(op.Mul(op.Reshape(op.Range(0, op.Squeeze(bs), 1), [-1, 1, 1, 1, 1]), num_heads),
                        op.Reshape(op.Range(0, op.Squeeze(num_heads), 1), [1, 1, -1, 1, 1]))
    table_row = op.Add(op.Mul(batch_head, num_patches), patch)  # (bs, num_queries, num_heads, L, P)

    # bilinear weights of the four pixels times the attention weight, 0 off the map, in the patch's order (x0, y0),
    # (x1, y0), (x0, y1), (x1, y1): (bs, num_queries, num_heads, L, P, 4). Products of same-shaped tensors (ONNX
    # Runtime broadcasts over a last axis of 2 slowly).
    one = op.CastLike(1.0, value)
    fx = op.Where(on_map, op.Sub(x, x0), zero)
    fy = op.Where(on_map, op.Sub(y, y0), zero)
    attention = op.Where(on_map, op.CastLike(attention_weights, value), zero)
    top, bottom = op.Mul(attention, op.Sub(one, fy)), op.Mul(attention, fy)
    corners = [op.Mul(top, op.Sub(one, fx)), op.Mul(top, fx), op.Mul(bottom, op.Sub(one, fx)), op.Mul(bottom, fx)]
    corner_weights = op.Concat(*(op.Unsqueeze(c, [-1]) for c in corners), axis=-1)

    # one product per (b, q, m): (bs * num_queries * num_heads, 1, L * P * 4) weights times (..., L * P * 4,
    # head_dims) pixels. A MatMul, not an Einsum: OpenVINO decomposes this Einsum into a broadcast product and a sum,
    # which at 800x1333 held another 1.5 GB per encoder layer (11.2 GB in all against 5.9)
    samples_per_head = op.Mul(op.ReduceProd(op.Shape(table_row, start=3), keepdims=1), 4)  # (1, ) L * P * 4
    weights = op.Reshape(corner_weights, op.Concat(_ints(-1, 1), samples_per_head, axis=0))
    pixels = op.Reshape(op.Gather(table, table_row, axis=0), op.Concat(_ints(-1), samples_per_head, head_dims, axis=0))
    output = op.MatMul(weights, pixels)  # (bs * num_queries * num_heads, 1, head_dims)
    return op.Reshape(output, op.Concat(op.Shape(table_row, start=0, end=2), _ints(-1), axis=0))
