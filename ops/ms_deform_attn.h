// Multi-scale deformable attention: shared declarations of the CPU and CUDA kernels.
//
// value               (bs, num_keys, num_heads, head_dims)              scalar_t
// spatial_shapes      (num_levels, 2) int64, (H_l, W_l)
// level_start_index   (num_levels,)   int64
// sampling_locations  (bs, num_queries, num_heads, num_levels, num_points, 2)  opmath_t, normalised (x, y)
// attention_weights   (bs, num_queries, num_heads, num_levels, num_points)     opmath_t
// output              (bs, num_queries, num_heads * head_dims)          scalar_t
// opmath_t is float for float16 / bfloat16 / float32 values and double for float64 values.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace mmddetr {

// The op's input checks (ms_deform_attn.cpp), the only ones: each failure is a ValueError
// "multi_scale_deformable_attn: <argument> must be <what was expected>, got <what it got>".
// Ranks, sizes, dtypes and devices (as the Meta kernels check them), then the levels' values (sizes summing to
// num_keys, start indices): every kernel with data calls it first.
void check_ms_deform_attn_inputs(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                 const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                                 const at::Tensor& attention_weights);
// The backward's grad_output: the forward's output shape, value's dtype and device.
void check_ms_deform_attn_grad_output(const at::Tensor& value, const at::Tensor& sampling_locations,
                                      const at::Tensor& grad_output);

at::Tensor ms_deform_attn_cpu(const at::Tensor& value, const at::Tensor& spatial_shapes,
                              const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                              const at::Tensor& attention_weights);

std::tuple<at::Tensor, at::Tensor, at::Tensor> ms_deform_attn_backward_cpu(
    const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations, const at::Tensor& attention_weights, const at::Tensor& grad_output);

}  // namespace mmddetr
