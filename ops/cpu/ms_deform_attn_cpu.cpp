// CPU kernels of multi-scale deformable attention (forward and backward).
//
// Sampling follows grid_sample(align_corners=False, padding_mode='zeros'): pixel = loc * size - 0.5, corners outside
// the map read 0. Work is done per (b, query, head) item in two vectorised passes:
//   1. geometry of the item's num_levels * num_points samples (corner pixels and bilinear weights), SIMD over samples;
//   2. one fused pass over the head's channels per sample, SIMD over channels; missing corners point at a zero row
//      (reads) and a scratch row (gradient writes), so the channel loop has no branches.
// The range functions are compiled for x86-64-v3 (AVX2 + FMA) and baseline x86-64; MMDDETR_CPU_KERNEL picks one
// (cpu_kernel.h). Inputs are checked by check_ms_deform_attn_inputs (ms_deform_attn.cpp) before anything else.
// Accumulation is in opmath_t (float for float16/bfloat16/float32, double for float64).
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "../ms_deform_attn.h"
#include "cpu_kernel.h"


namespace mmddetr {
namespace {

// Sizes of one call, and per sample s = level * num_points + point the size and first key of its level.
template <typename opmath_t>
struct Problem {
  int64_t batch, num_keys, num_heads, head_dims, num_queries, num_samples;
  const opmath_t* width;   // (num_samples,)
  const opmath_t* height;  // (num_samples,)
  const int32_t* width_i;  // (num_samples,)
  const int64_t* start;    // (num_samples,) first key of the sample's level
};

// Per-level sizes repeated for every point of the level (the levels are checked already).
struct LevelTable {
  std::vector<int32_t> width_i, height_i;
  std::vector<int64_t> start;

  LevelTable(const at::Tensor& spatial_shapes, const at::Tensor& level_start_index, int64_t num_points) {
    const auto shapes = spatial_shapes.accessor<int64_t, 2>();
    const auto starts = level_start_index.accessor<int64_t, 1>();
    for (int64_t l = 0; l < shapes.size(0); ++l) {
      for (int64_t p = 0; p < num_points; ++p) {
        width_i.push_back(static_cast<int32_t>(shapes[l][1]));
        height_i.push_back(static_cast<int32_t>(shapes[l][0]));
        start.push_back(starts[l]);
      }
    }
  }
};

// Geometry of the samples of one item, structure of arrays over samples.
template <typename opmath_t>
struct Samples {
  int32_t* pixel[4];    // y * W + x of each corner within its level, -1 when outside the map
  opmath_t* weight[4];  // bilinear weight of each corner
  opmath_t* lx;         // fractional x and y
  opmath_t* ly;
};

template <typename opmath_t>
MMDDETR_INLINE void sample_geometry(const Problem<opmath_t>& pb, const opmath_t* loc, const Samples<opmath_t>& out) {
  const opmath_t *width = pb.width, *height = pb.height;
  const int32_t* width_i = pb.width_i;
  int32_t *p0 = out.pixel[0], *p1 = out.pixel[1], *p2 = out.pixel[2], *p3 = out.pixel[3];
  opmath_t *w0 = out.weight[0], *w1 = out.weight[1], *w2 = out.weight[2], *w3 = out.weight[3];
  opmath_t *lx_out = out.lx, *ly_out = out.ly;
  const int64_t num_samples = pb.num_samples;  // a local: the stores below could alias pb for all the compiler knows
#pragma omp simd
  for (int64_t s = 0; s < num_samples; ++s) {
    const opmath_t x_raw = loc[2 * s] * width[s] - opmath_t(0.5), y_raw = loc[2 * s + 1] * height[s] - opmath_t(0.5);
    // Masks are 1 / 0 in floating point, each from one comparison, and become int only at the end (pixel * m + m - 1
    // is the pixel or -1): GCC does not vectorise selects that mix float and int or combined boolean masks.
    const opmath_t inside = (x_raw > -1 ? 1 : 0) * (y_raw > -1 ? 1 : 0) * (x_raw < width[s] ? 1 : 0) *
                            (y_raw < height[s] ? 1 : 0);  // 0 for NaN
    const opmath_t x = inside > 0 ? x_raw : opmath_t(-2), y = inside > 0 ? y_raw : opmath_t(-2);  // -2: no corner in
    const int32_t x0 = static_cast<int32_t>(x + 2) - 2, y0 = static_cast<int32_t>(y + 2) - 2;  // floor, x >= -2
    const opmath_t fx0 = x0, fy0 = y0;
    const opmath_t lx = x - fx0, ly = y - fy0;
    const opmath_t x0_in = fx0 >= 0 ? 1 : 0, x1_in = (fx0 >= -1 ? 1 : 0) * (fx0 + 1 < width[s] ? 1 : 0);
    const opmath_t y0_in = fy0 >= 0 ? 1 : 0, y1_in = (fy0 >= -1 ? 1 : 0) * (fy0 + 1 < height[s] ? 1 : 0);
    const int32_t m0 = static_cast<int32_t>(x0_in * y0_in), m1 = static_cast<int32_t>(x1_in * y0_in);
    const int32_t m2 = static_cast<int32_t>(x0_in * y1_in), m3 = static_cast<int32_t>(x1_in * y1_in);
    const int32_t pixel = y0 * width_i[s] + x0;
    p0[s] = pixel * m0 + m0 - 1;
    p1[s] = (pixel + 1) * m1 + m1 - 1;
    p2[s] = (pixel + width_i[s]) * m2 + m2 - 1;
    p3[s] = (pixel + width_i[s] + 1) * m3 + m3 - 1;
    w0[s] = (1 - ly) * (1 - lx);
    w1[s] = (1 - ly) * lx;
    w2[s] = ly * (1 - lx);
    w3[s] = ly * lx;
    lx_out[s] = lx;
    ly_out[s] = ly;
  }
}

// Rows of the four corners of sample s of the head whose first key row is `head`; missing corners read `zeros`.
template <typename T, typename Z>
MMDDETR_INLINE void corner_rows(const int32_t* const pixel[4], int64_t s, T* level, int64_t stride, Z* zeros,
                                Z* rows[4]) {
  for (int i = 0; i < 4; ++i) rows[i] = pixel[i][s] < 0 ? zeros : level + pixel[i][s] * stride;
}

// Forward of items [begin, end), an item being one (b, query, head) in memory order (reading locations, weights and
// writing outputs sequentially matters more than keeping one head's values in cache); scratch: 4 * num_samples int32,
// 6 * num_samples + head_dims opmath_t.
template <typename scalar_t, int kHeadDims>
MMDDETR_INLINE void forward_range(const Problem<at::opmath_type<scalar_t>>& pb, const scalar_t* value,
                                  const at::opmath_type<scalar_t>* loc, const at::opmath_type<scalar_t>* attn,
                                  scalar_t* out, int64_t begin, int64_t end, const scalar_t* zeros,
                                  const Samples<at::opmath_type<scalar_t>>& smp, at::opmath_type<scalar_t>* acc) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t D = kHeadDims > 0 ? kHeadDims : pb.head_dims, stride = pb.num_heads * D, S = pb.num_samples;
  for (int64_t item = begin; item < end; ++item) {
    const int64_t h = item % pb.num_heads, b = item / (pb.num_queries * pb.num_heads);
    const scalar_t* head = value + (b * pb.num_keys * pb.num_heads + h) * D;
    sample_geometry(pb, loc + item * S * 2, smp);
    const opmath_t* a = attn + item * S;
    std::fill(acc, acc + D, opmath_t(0));
    for (int64_t s = 0; s < S; ++s) {
      if ((smp.pixel[0][s] & smp.pixel[1][s] & smp.pixel[2][s] & smp.pixel[3][s]) < 0) continue;  // all outside
      const scalar_t* r[4];
      corner_rows(smp.pixel, s, head + pb.start[s] * stride, stride, zeros, r);
      const opmath_t w0 = a[s] * smp.weight[0][s], w1 = a[s] * smp.weight[1][s], w2 = a[s] * smp.weight[2][s],
                     w3 = a[s] * smp.weight[3][s];
      const scalar_t *r0 = r[0], *r1 = r[1], *r2 = r[2], *r3 = r[3];
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) {
        acc[d] += w0 * opmath_t(r0[d]) + w1 * opmath_t(r1[d]) + w2 * opmath_t(r2[d]) + w3 * opmath_t(r3[d]);
      }
    }
    std::copy(acc, acc + D, out + item * D);
  }
}

// Backward of tasks [begin, end), a task being the queries of one split of one image b, taken with their heads in
// memory order; each split adds into its own grad_value buffer, so no two threads add to the same element.
template <typename scalar_t, int kHeadDims>
MMDDETR_INLINE void backward_range(const Problem<at::opmath_type<scalar_t>>& pb, int64_t splits,
                                   const scalar_t* value, const at::opmath_type<scalar_t>* loc,
                                   const at::opmath_type<scalar_t>* attn, const scalar_t* grad_out,
                                   at::opmath_type<scalar_t>* grad_value, at::opmath_type<scalar_t>* grad_loc,
                                   at::opmath_type<scalar_t>* grad_attn, int64_t begin, int64_t end,
                                   const scalar_t* zeros, const Samples<at::opmath_type<scalar_t>>& smp,
                                   at::opmath_type<scalar_t>* go, at::opmath_type<scalar_t>* sink) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t D = kHeadDims > 0 ? kHeadDims : pb.head_dims, stride = pb.num_heads * D, S = pb.num_samples;
  const int64_t split_size = pb.batch * pb.num_keys * stride, per_split = (pb.num_queries + splits - 1) / splits;
  for (int64_t task = begin; task < end; ++task) {
    const int64_t b = task % pb.batch, split = task / pb.batch;
    const int64_t q_end = std::min(pb.num_queries, (split + 1) * per_split);
    for (int64_t item = (b * pb.num_queries + split * per_split) * pb.num_heads;
         item < (b * pb.num_queries + q_end) * pb.num_heads; ++item) {
      const int64_t head_offset = (b * pb.num_keys * pb.num_heads + item % pb.num_heads) * D;
      opmath_t* grad_head = grad_value + split * split_size + head_offset;
      sample_geometry(pb, loc + item * S * 2, smp);
      const opmath_t* a = attn + item * S;
      for (int64_t d = 0; d < D; ++d) go[d] = opmath_t(grad_out[item * D + d]);
      for (int64_t s = 0; s < S; ++s) {
        if ((smp.pixel[0][s] & smp.pixel[1][s] & smp.pixel[2][s] & smp.pixel[3][s]) < 0) continue;
        const scalar_t* r[4];
        opmath_t* g[4];
        corner_rows(smp.pixel, s, value + head_offset + pb.start[s] * stride, stride, zeros, r);
        corner_rows(smp.pixel, s, grad_head + pb.start[s] * stride, stride, sink, g);
        const scalar_t *r0 = r[0], *r1 = r[1], *r2 = r[2], *r3 = r[3];
        opmath_t *g0 = g[0], *g1 = g[1], *g2 = g[2], *g3 = g[3];
        const opmath_t w0 = smp.weight[0][s], w1 = smp.weight[1][s], w2 = smp.weight[2][s], w3 = smp.weight[3][s];
        const opmath_t lx = smp.lx[s], ly = smp.ly[s], hx = 1 - lx, hy = 1 - ly, as = a[s];
        opmath_t sum_attn = 0, sum_x = 0, sum_y = 0;
#pragma omp simd reduction(+ : sum_attn, sum_x, sum_y)
        for (int64_t d = 0; d < D; ++d) {
          const opmath_t v0 = r0[d], v1 = r1[d], v2 = r2[d], v3 = r3[d], god = go[d], ag = as * god;
          sum_attn += god * (w0 * v0 + w1 * v1 + w2 * v2 + w3 * v3);
          sum_x += god * (hy * (v1 - v0) + ly * (v3 - v2));
          sum_y += god * (hx * (v2 - v0) + lx * (v3 - v1));
          g0[d] += w0 * ag;
          g1[d] += w1 * ag;
          g2[d] += w2 * ag;
          g3[d] += w3 * ag;
        }
        grad_attn[item * S + s] = sum_attn;
        grad_loc[(item * S + s) * 2] = as * sum_x * pb.width[s];
        grad_loc[(item * S + s) * 2 + 1] = as * sum_y * pb.height[s];
      }
    }
  }
}

// Per-thread scratch of one parallel chunk.
template <typename scalar_t>
struct Scratch {
  using opmath_t = at::opmath_type<scalar_t>;
  std::vector<scalar_t> zeros;
  std::vector<int32_t> pixels;
  std::vector<opmath_t> floats;  // 6 * num_samples of geometry, then 2 * head_dims of channel buffers
  Samples<opmath_t> samples;

  Scratch(int64_t num_samples, int64_t head_dims)
      : zeros(head_dims, scalar_t(0)), pixels(4 * num_samples), floats(6 * num_samples + 2 * head_dims) {
    for (int i = 0; i < 4; ++i) {
      samples.pixel[i] = pixels.data() + i * num_samples;
      samples.weight[i] = floats.data() + i * num_samples;
    }
    samples.lx = floats.data() + 4 * num_samples;
    samples.ly = floats.data() + 5 * num_samples;
  }
  opmath_t* channels(int i) { return floats.data() + floats.size() - (2 - i) * zeros.size(); }
};

// Owns the level table in the element types the kernels read.
template <typename opmath_t>
struct ProblemStorage {
  LevelTable table;
  std::vector<opmath_t> width, height;
  Problem<opmath_t> problem;

  ProblemStorage(const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
                 const at::Tensor& loc)
      : table(spatial_shapes, level_start_index, loc.size(4)),
        width(table.width_i.begin(), table.width_i.end()),
        height(table.height_i.begin(), table.height_i.end()) {
    problem = {value.size(0), value.size(1), value.size(2), value.size(3), loc.size(1), loc.size(3) * loc.size(4),
               width.data(), height.data(), table.width_i.data(), table.start.data()};
  }
};

// Calls fn(std::integral_constant<int, D>) with D = head_dims for the common head sizes (the channel loops then
// unroll completely), D = 0 (read at run time) otherwise.
template <typename F>
void with_head_dims(int64_t head_dims, const F& fn) {
  switch (head_dims) {
    case 16: return fn(std::integral_constant<int, 16>());
    case 32: return fn(std::integral_constant<int, 32>());
    case 64: return fn(std::integral_constant<int, 64>());
    default: return fn(std::integral_constant<int, 0>());
  }
}

}  // namespace

at::Tensor ms_deform_attn_cpu(const at::Tensor& value_, const at::Tensor& spatial_shapes,
                              const at::Tensor& level_start_index, const at::Tensor& sampling_locations_,
                              const at::Tensor& attention_weights_) {
  check_ms_deform_attn_inputs(value_, spatial_shapes, level_start_index, sampling_locations_, attention_weights_);
  const CpuKernel kernel = cpu_kernel();
  const auto value = value_.contiguous(), loc = sampling_locations_.contiguous(),
             attn = attention_weights_.contiguous();
  auto out = at::empty({value.size(0), loc.size(1), value.size(2) * value.size(3)}, value.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, value.scalar_type(), "ms_deform_attn_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const ProblemStorage<opmath_t> storage(value, spatial_shapes.contiguous(), level_start_index.contiguous(), loc);
    const auto& pb = storage.problem;
    const int64_t items = pb.batch * pb.num_queries * pb.num_heads;
    const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, pb.num_samples * pb.head_dims));
    at::parallel_for(0, items, grain, [&](int64_t begin, int64_t end) {
      Scratch<scalar_t> scratch(pb.num_samples, pb.head_dims);
      with_head_dims(pb.head_dims, [&](auto head_dims) {
        constexpr int D = decltype(head_dims)::value;
        run_cpu_kernel(kernel, [&]() MMDDETR_INLINE_LAMBDA {
          forward_range<scalar_t, D>(pb, value.const_data_ptr<scalar_t>(), loc.const_data_ptr<opmath_t>(),
                                     attn.const_data_ptr<opmath_t>(), out.mutable_data_ptr<scalar_t>(), begin, end,
                                     scratch.zeros.data(), scratch.samples, scratch.channels(0));
        });
      });
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> ms_deform_attn_backward_cpu(
    const at::Tensor& value_, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations_, const at::Tensor& attention_weights_, const at::Tensor& grad_output_) {
  check_ms_deform_attn_inputs(value_, spatial_shapes, level_start_index, sampling_locations_, attention_weights_);
  check_ms_deform_attn_grad_output(value_, sampling_locations_, grad_output_);
  const CpuKernel kernel = cpu_kernel();
  const auto value = value_.contiguous(), loc = sampling_locations_.contiguous(),
             attn = attention_weights_.contiguous(), grad_output = grad_output_.contiguous();
  const int64_t bs = value.size(0), num_queries = loc.size(1), heads = value.size(2);
  // Split the queries of each image only when there are fewer images than threads.
  const int64_t tasks = bs;
  const int64_t splits = tasks == 0 ? 1
                                    : std::clamp<int64_t>((at::get_num_threads() + tasks - 1) / tasks, 1,
                                                          std::max<int64_t>(1, num_queries / 256));
  const auto opmath = value.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const bool direct = splits == 1 && value.scalar_type() == opmath;
  auto grad_value = direct ? at::zeros_like(value)
                           : at::zeros({splits, bs, value.size(1), heads, value.size(3)},
                                       value.options().dtype(opmath));
  auto grad_loc = at::zeros_like(loc), grad_attn = at::zeros_like(attn);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, value.scalar_type(), "ms_deform_attn_backward_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const ProblemStorage<opmath_t> storage(value, spatial_shapes.contiguous(), level_start_index.contiguous(), loc);
    const auto& pb = storage.problem;
    at::parallel_for(0, splits * tasks, 1, [&](int64_t begin, int64_t end) {
      Scratch<scalar_t> scratch(pb.num_samples, pb.head_dims);
      with_head_dims(pb.head_dims, [&](auto head_dims) {
        constexpr int D = decltype(head_dims)::value;
        run_cpu_kernel(kernel, [&]() MMDDETR_INLINE_LAMBDA {
          backward_range<scalar_t, D>(pb, splits, value.const_data_ptr<scalar_t>(), loc.const_data_ptr<opmath_t>(),
                                      attn.const_data_ptr<opmath_t>(), grad_output.const_data_ptr<scalar_t>(),
                                      grad_value.mutable_data_ptr<opmath_t>(), grad_loc.mutable_data_ptr<opmath_t>(),
                                      grad_attn.mutable_data_ptr<opmath_t>(), begin, end, scratch.zeros.data(),
                                      scratch.samples, scratch.channels(0), scratch.channels(1));
        });
      });
    });
  });
  if (!direct) grad_value = grad_value.sum(0).to(value.scalar_type());
  return {grad_value, grad_loc, grad_attn};
}

}  // namespace mmddetr
