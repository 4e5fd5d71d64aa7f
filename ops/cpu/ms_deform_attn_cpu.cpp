// CPU kernels of multi-scale deformable attention (forward and backward).
//
// Sampling follows grid_sample(align_corners=False, padding_mode='zeros'): pixel = loc * size - 0.5, corners outside
// the map read 0. Every sample's four corners are combined in one pass over the head's channels, missing corners
// pointing at a zero row (reads) and a scratch row (gradient writes), so the channel loops have no branches and
// vectorise (`omp simd`, compiled with -fopenmp-simd). Accumulation is in opmath_t (float, or double for double).
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../ms_deform_attn.h"

namespace mmddetr {
namespace {

struct Geometry {
  int64_t batch, num_keys, num_heads, head_dims, num_queries, num_levels, num_points;
  std::vector<int64_t> height, width, start;  // per level
};

Geometry geometry(const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
                  const at::Tensor& sampling_locations) {
  Geometry g{value.size(0), value.size(1), value.size(2), value.size(3), sampling_locations.size(1),
             sampling_locations.size(3), sampling_locations.size(4)};
  const auto shapes = spatial_shapes.accessor<int64_t, 2>();
  const auto starts = level_start_index.accessor<int64_t, 1>();
  int64_t total = 0;
  for (int64_t l = 0; l < g.num_levels; ++l) {
    TORCH_CHECK_VALUE(shapes[l][0] > 0 && shapes[l][1] > 0, "spatial_shapes: level ", l,
                      " must have positive (H, W), got (", shapes[l][0], ", ", shapes[l][1], ")");
    TORCH_CHECK_VALUE(starts[l] == total, "level_start_index: expected ", total, " at level ", l,
                      " (cumulative H*W of spatial_shapes), got ", starts[l]);
    g.height.push_back(shapes[l][0]);
    g.width.push_back(shapes[l][1]);
    g.start.push_back(total);
    total += shapes[l][0] * shapes[l][1];
  }
  TORCH_CHECK_VALUE(total == g.num_keys, "spatial_shapes: sum of H*W is ", total, " but value has ", g.num_keys,
                    " keys (dim 1)");
  return g;
}

// Corner rows and bilinear weights of one sampling point on a (height, width) map whose pixel (0, 0) is `level`;
// `stride` is the distance between two pixels. Returns false when the point lies wholly outside the map.
template <typename scalar_t, typename opmath_t>
struct Corners {
  const scalar_t* row[4];
  int64_t offset[4];  // of each row from `level`, -1 when outside the map
  opmath_t weight[4];
  opmath_t lx, ly;

  bool set(const scalar_t* level, int64_t stride, int64_t height, int64_t width, opmath_t loc_x, opmath_t loc_y,
           const scalar_t* zeros) {
    const opmath_t x = loc_x * width - opmath_t(0.5), y = loc_y * height - opmath_t(0.5);
    if (!(x > -1 && y > -1 && x < width && y < height)) return false;  // also rejects NaN
    const int64_t x0 = static_cast<int64_t>(std::floor(x)), y0 = static_cast<int64_t>(std::floor(y));
    lx = x - x0;
    ly = y - y0;
    const opmath_t hx = 1 - lx, hy = 1 - ly;
    const int64_t xs[4] = {x0, x0 + 1, x0, x0 + 1}, ys[4] = {y0, y0, y0 + 1, y0 + 1};
    const opmath_t ws[4] = {hy * hx, hy * lx, ly * hx, ly * lx};
    for (int i = 0; i < 4; ++i) {
      const bool inside = xs[i] >= 0 && ys[i] >= 0 && xs[i] < width && ys[i] < height;
      offset[i] = inside ? (ys[i] * width + xs[i]) * stride : -1;
      row[i] = inside ? level + offset[i] : zeros;
      weight[i] = ws[i];
    }
    return true;
  }
};

template <typename scalar_t>
void forward_kernel(const Geometry& g, const scalar_t* value, const at::opmath_type<scalar_t>* loc,
                    const at::opmath_type<scalar_t>* attn, scalar_t* out) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t D = g.head_dims, stride = g.num_heads * D, LP = g.num_levels * g.num_points;
  const int64_t items = g.batch * g.num_queries * g.num_heads;  // one item = (b, q, h)
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, LP * D));
  at::parallel_for(0, items, grain, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> zeros(D, scalar_t(0));
    std::vector<opmath_t> acc(D);
    Corners<scalar_t, opmath_t> c;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t h = item % g.num_heads, b = item / (g.num_heads * g.num_queries);
      const opmath_t* item_loc = loc + item * LP * 2;
      const opmath_t* item_attn = attn + item * LP;
      std::fill(acc.begin(), acc.end(), opmath_t(0));
      for (int64_t l = 0; l < g.num_levels; ++l) {
        const scalar_t* level = value + ((b * g.num_keys + g.start[l]) * g.num_heads + h) * D;
        for (int64_t p = 0; p < g.num_points; ++p) {
          const int64_t lp = l * g.num_points + p;
          if (!c.set(level, stride, g.height[l], g.width[l], item_loc[2 * lp], item_loc[2 * lp + 1], zeros.data()))
            continue;
          const opmath_t a = item_attn[lp];
          const opmath_t w0 = a * c.weight[0], w1 = a * c.weight[1], w2 = a * c.weight[2], w3 = a * c.weight[3];
          const scalar_t *r0 = c.row[0], *r1 = c.row[1], *r2 = c.row[2], *r3 = c.row[3];
          opmath_t* acc_p = acc.data();
#pragma omp simd
          for (int64_t d = 0; d < D; ++d) {
            acc_p[d] += w0 * opmath_t(r0[d]) + w1 * opmath_t(r1[d]) + w2 * opmath_t(r2[d]) + w3 * opmath_t(r3[d]);
          }
        }
      }
      std::copy(acc.begin(), acc.end(), out + item * D);
    }
  });
}

// Gradients are written in parallel over (split, b, h): each task owns one head's slice of its split's
// grad_value buffer, so no two threads ever add to the same element.
template <typename scalar_t>
void backward_kernel(const Geometry& g, int64_t splits, const scalar_t* value, const at::opmath_type<scalar_t>* loc,
                     const at::opmath_type<scalar_t>* attn, const scalar_t* grad_out,
                     at::opmath_type<scalar_t>* grad_value, at::opmath_type<scalar_t>* grad_loc,
                     at::opmath_type<scalar_t>* grad_attn) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t D = g.head_dims, stride = g.num_heads * D, LP = g.num_levels * g.num_points;
  const int64_t split_size = g.batch * g.num_keys * stride, queries_per_split = (g.num_queries + splits - 1) / splits;
  at::parallel_for(0, splits * g.batch * g.num_heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> zeros(D, scalar_t(0));
    std::vector<opmath_t> scratch(D), go(D);
    Corners<scalar_t, opmath_t> c;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t h = task % g.num_heads, b = (task / g.num_heads) % g.batch, s = task / (g.num_heads * g.batch);
      const int64_t q_end = std::min(g.num_queries, (s + 1) * queries_per_split);
      for (int64_t q = s * queries_per_split; q < q_end; ++q) {
        const int64_t item = (b * g.num_queries + q) * g.num_heads + h;
        const opmath_t* item_loc = loc + item * LP * 2;
        const opmath_t* item_attn = attn + item * LP;
        for (int64_t d = 0; d < D; ++d) go[d] = opmath_t(grad_out[item * D + d]);
        for (int64_t l = 0; l < g.num_levels; ++l) {
          const int64_t level_offset = ((b * g.num_keys + g.start[l]) * g.num_heads + h) * D;
          opmath_t* grad_level = grad_value + s * split_size + level_offset;
          for (int64_t p = 0; p < g.num_points; ++p) {
            const int64_t lp = l * g.num_points + p;
            if (!c.set(value + level_offset, stride, g.height[l], g.width[l], item_loc[2 * lp], item_loc[2 * lp + 1],
                       zeros.data()))
              continue;
            const opmath_t a = item_attn[lp], lx = c.lx, ly = c.ly, hx = 1 - lx, hy = 1 - ly;
            const opmath_t w0 = c.weight[0], w1 = c.weight[1], w2 = c.weight[2], w3 = c.weight[3];
            const scalar_t *r0 = c.row[0], *r1 = c.row[1], *r2 = c.row[2], *r3 = c.row[3];
            opmath_t* gr[4];
            for (int i = 0; i < 4; ++i) gr[i] = c.offset[i] < 0 ? scratch.data() : grad_level + c.offset[i];
            opmath_t *g0 = gr[0], *g1 = gr[1], *g2 = gr[2], *g3 = gr[3];
            const opmath_t* go_p = go.data();
            opmath_t sum_attn = 0, sum_x = 0, sum_y = 0;
#pragma omp simd reduction(+ : sum_attn, sum_x, sum_y)
            for (int64_t d = 0; d < D; ++d) {
              const opmath_t v0 = r0[d], v1 = r1[d], v2 = r2[d], v3 = r3[d], god = go_p[d];
              sum_attn += god * (w0 * v0 + w1 * v1 + w2 * v2 + w3 * v3);
              sum_x += god * (hy * (v1 - v0) + ly * (v3 - v2));
              sum_y += god * (hx * (v2 - v0) + lx * (v3 - v1));
              const opmath_t ag = a * god;
              g0[d] += w0 * ag;
              g1[d] += w1 * ag;
              g2[d] += w2 * ag;
              g3[d] += w3 * ag;
            }
            grad_attn[item * LP + lp] = sum_attn;
            grad_loc[(item * LP + lp) * 2] = a * sum_x * g.width[l];
            grad_loc[(item * LP + lp) * 2 + 1] = a * sum_y * g.height[l];
          }
        }
      }
    }
  });
}

}  // namespace

at::Tensor ms_deform_attn_cpu(const at::Tensor& value_, const at::Tensor& spatial_shapes,
                              const at::Tensor& level_start_index, const at::Tensor& sampling_locations_,
                              const at::Tensor& attention_weights_) {
  check_ms_deform_attn_inputs(value_, spatial_shapes, level_start_index, sampling_locations_, attention_weights_);
  const auto value = value_.contiguous(), loc = sampling_locations_.contiguous(),
             attn = attention_weights_.contiguous();
  const Geometry g = geometry(value, spatial_shapes.contiguous(), level_start_index.contiguous(), loc);
  auto out = at::empty({g.batch, g.num_queries, g.num_heads * g.head_dims}, value.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, value.scalar_type(), "ms_deform_attn_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    forward_kernel<scalar_t>(g, value.const_data_ptr<scalar_t>(), loc.const_data_ptr<opmath_t>(),
                             attn.const_data_ptr<opmath_t>(), out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> ms_deform_attn_backward_cpu(
    const at::Tensor& value_, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations_, const at::Tensor& attention_weights_, const at::Tensor& grad_output_) {
  check_ms_deform_attn_inputs(value_, spatial_shapes, level_start_index, sampling_locations_, attention_weights_);
  const auto value = value_.contiguous(), loc = sampling_locations_.contiguous(),
             attn = attention_weights_.contiguous(), grad_output = grad_output_.contiguous();
  const Geometry g = geometry(value, spatial_shapes.contiguous(), level_start_index.contiguous(), loc);
  TORCH_CHECK_VALUE(grad_output.sizes() == at::IntArrayRef({g.batch, g.num_queries, g.num_heads * g.head_dims}) &&
                        grad_output.scalar_type() == value.scalar_type(),
                    "grad_output: expected ", value.scalar_type(), " (", g.batch, ", ", g.num_queries, ", ",
                    g.num_heads * g.head_dims, "), got ", grad_output.scalar_type(), " ", grad_output.sizes());
  // Split the queries of each (b, h) task only when there are fewer tasks than threads; each split adds into a
  // grad_value buffer of its own, summed at the end.
  const int64_t tasks = g.batch * g.num_heads;
  const int64_t splits = tasks == 0 ? 1
                                    : std::clamp<int64_t>((at::get_num_threads() + tasks - 1) / tasks, 1,
                                                          std::max<int64_t>(1, g.num_queries / 256));
  const auto opmath = value.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const bool direct = splits == 1 && value.scalar_type() == opmath;
  auto grad_value = direct ? at::zeros_like(value) : at::zeros({splits, g.batch, g.num_keys, g.num_heads, g.head_dims},
                                                               value.options().dtype(opmath));
  auto grad_loc = at::zeros_like(loc), grad_attn = at::zeros_like(attn);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, value.scalar_type(), "ms_deform_attn_backward_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    backward_kernel<scalar_t>(g, splits, value.const_data_ptr<scalar_t>(), loc.const_data_ptr<opmath_t>(),
                              attn.const_data_ptr<opmath_t>(), grad_output.const_data_ptr<scalar_t>(),
                              grad_value.mutable_data_ptr<opmath_t>(), grad_loc.mutable_data_ptr<opmath_t>(),
                              grad_attn.mutable_data_ptr<opmath_t>());
  });
  if (!direct) grad_value = grad_value.sum(0).to(value.scalar_type());
  return {grad_value, grad_loc, grad_attn};
}

}  // namespace mmddetr
