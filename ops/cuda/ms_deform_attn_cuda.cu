// CUDA kernels of multi-scale deformable attention (forward and backward), float16 / bfloat16 / float32 / float64.
//
// Thread layout: a group of G lanes (a power of two, G <= 32, all within one warp) serves one (b, query, head); each
// lane owns chunks of N consecutive channels (N * sizeof(scalar_t) = 16 bytes when head_dims allows), loaded with one
// vector instruction per bilinear corner. The backward gives every lane 4 channels in every 16- and 32-bit dtype (so a
// 16-bit backward runs the float32 one's lanes and atomics), reduces the per-point gradients of the locations and the
// attention weights across the group with warp shuffles, and adds grad_value in opmath_t with one 16-byte vector
// atomic per corner on sm_90 and later (scalar atomics before). All indexing is int64 and the grid is strided, so
// there is no batch-size or im2col_step constraint.
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "../ms_deform_attn.h"

namespace mmddetr {
namespace {

constexpr int kThreads = 256;

template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

struct Dims {
  int64_t items;  // bs * num_queries * num_heads
  int64_t num_queries, num_keys;
  int num_heads, head_dims, num_levels, num_points, group;
};

// The (batch, query, head) a group serves. Groups run in (batch, head, query) order, so a block serves neighbouring
// queries of one head, whose samples share value rows in L1; `item` indexes the (bs, num_queries, num_heads) tensors.
struct Item {
  int64_t batch, item;
  int head;

  __device__ Item(const Dims& d, int64_t slot) {
    const int64_t query = slot % d.num_queries, batch_head = slot / d.num_queries;
    head = batch_head % d.num_heads;
    batch = batch_head / d.num_heads;
    item = (batch * d.num_queries + query) * d.num_heads + head;
  }
};

// Bilinear geometry of one sampling point (grid_sample, align_corners=False, zero padding): the key index of each
// corner (-1 when outside the map) and its weight. Returns false when the point lies wholly outside the map.
template <typename opmath_t>
struct Corners {
  int64_t key[4];
  opmath_t weight[4], lx, ly;

  __device__ bool set(int64_t start, int64_t height, int64_t width, opmath_t loc_x, opmath_t loc_y) {
    const opmath_t x = loc_x * width - opmath_t(0.5), y = loc_y * height - opmath_t(0.5);
    if (!(x > -1 && y > -1 && x < width && y < height)) return false;  // also rejects NaN
    const int64_t x0 = static_cast<int64_t>(floor(x)), y0 = static_cast<int64_t>(floor(y));
    lx = x - x0;
    ly = y - y0;
    const opmath_t hx = 1 - lx, hy = 1 - ly;
    const int64_t xs[4] = {x0, x0 + 1, x0, x0 + 1}, ys[4] = {y0, y0, y0 + 1, y0 + 1};
    weight[0] = hy * hx;
    weight[1] = hy * lx;
    weight[2] = ly * hx;
    weight[3] = ly * lx;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const bool inside = xs[i] >= 0 && ys[i] >= 0 && xs[i] < width && ys[i] < height;
      key[i] = inside ? start + ys[i] * width + xs[i] : -1;
    }
    return true;
  }
};

template <typename scalar_t, typename opmath_t, int N>
__device__ __forceinline__ void load(const scalar_t* p, opmath_t (&v)[N]) {
  const Pack<scalar_t, N> pack = *reinterpret_cast<const Pack<scalar_t, N>*>(p);
#pragma unroll
  for (int i = 0; i < N; ++i) v[i] = static_cast<opmath_t>(pack.v[i]);
}

template <typename scalar_t, int N>
__global__ void forward_kernel(Dims d, const scalar_t* __restrict__ value, const int64_t* __restrict__ shapes,
                               const int64_t* __restrict__ starts, const at::opmath_type<scalar_t>* __restrict__ loc,
                               const at::opmath_type<scalar_t>* __restrict__ attn, scalar_t* __restrict__ out) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int LP = d.num_levels * d.num_points, D = d.head_dims;
  const int64_t stride = static_cast<int64_t>(d.num_heads) * D;  // between two keys
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < d.items * d.group;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const Item it(d, t / d.group);
    const int64_t item = it.item, b = it.batch;
    const int lane = t % d.group, h = it.head;
    const scalar_t* head = value + b * d.num_keys * stride + h * D;
    const opmath_t* item_loc = loc + item * LP * 2;
    const opmath_t* item_attn = attn + item * LP;
    for (int c = lane * N; c < D; c += d.group * N) {
      opmath_t acc[N] = {};
      for (int l = 0; l < d.num_levels; ++l) {
        const int64_t height = shapes[2 * l], width = shapes[2 * l + 1], start = starts[l];
        for (int p = 0; p < d.num_points; ++p) {
          const int lp = l * d.num_points + p;
          Corners<opmath_t> g;
          if (!g.set(start, height, width, item_loc[2 * lp], item_loc[2 * lp + 1])) continue;
          const opmath_t a = item_attn[lp];
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            if (g.key[i] < 0) continue;
            opmath_t v[N];
            load<scalar_t, opmath_t, N>(head + g.key[i] * stride + c, v);
            const opmath_t w = a * g.weight[i];
#pragma unroll
            for (int j = 0; j < N; ++j) acc[j] += w * v[j];
          }
        }
      }
      Pack<scalar_t, N> pack;
#pragma unroll
      for (int j = 0; j < N; ++j) pack.v[j] = static_cast<scalar_t>(acc[j]);
      *reinterpret_cast<Pack<scalar_t, N>*>(out + item * D + c) = pack;
    }
  }
}

// Sum over the `group` lanes (aligned, a power of two) that serve one item.
template <typename opmath_t>
__device__ __forceinline__ opmath_t group_sum(opmath_t x, int group, unsigned mask) {
  for (int offset = group / 2; offset > 0; offset /= 2) x += __shfl_xor_sync(mask, x, offset, group);
  return x;
}

// grad[0:N] += v[0:N]: float4 atomics where the chip has them (sm_90: one L2 transaction per 16 bytes instead of four),
// else one atomic per element. grad must be 16-byte aligned when N is a multiple of 4.
template <typename opmath_t, int N>
__device__ __forceinline__ void atomic_add(opmath_t* grad, const opmath_t (&v)[N]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if constexpr (std::is_same_v<opmath_t, float> && N % 4 == 0) {
#pragma unroll
    for (int j = 0; j < N; j += 4) {
      atomicAdd(reinterpret_cast<float4*>(grad + j), make_float4(v[j], v[j + 1], v[j + 2], v[j + 3]));
    }
    return;
  }
#endif
#pragma unroll
  for (int j = 0; j < N; ++j) atomicAdd(grad + j, v[j]);
}

template <typename scalar_t, int N>
__global__ void backward_kernel(Dims d, const scalar_t* __restrict__ value, const int64_t* __restrict__ shapes,
                                const int64_t* __restrict__ starts,
                                const at::opmath_type<scalar_t>* __restrict__ loc,
                                const at::opmath_type<scalar_t>* __restrict__ attn,
                                const scalar_t* __restrict__ grad_out, at::opmath_type<scalar_t>* grad_value,
                                at::opmath_type<scalar_t>* __restrict__ grad_loc,
                                at::opmath_type<scalar_t>* __restrict__ grad_attn) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int LP = d.num_levels * d.num_points, D = d.head_dims;
  const int64_t stride = static_cast<int64_t>(d.num_heads) * D;
  const unsigned lane_in_warp = threadIdx.x % 32;
  const unsigned mask = d.group == 32 ? 0xffffffffu : ((1u << d.group) - 1) << (lane_in_warp & ~(d.group - 1));
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < d.items * d.group;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const Item it(d, t / d.group);
    const int64_t item = it.item, b = it.batch;
    const int lane = t % d.group, h = it.head;
    const int64_t head_offset = b * d.num_keys * stride + h * D;
    const opmath_t* item_loc = loc + item * LP * 2;
    const opmath_t* item_attn = attn + item * LP;
    for (int l = 0; l < d.num_levels; ++l) {
      const int64_t height = shapes[2 * l], width = shapes[2 * l + 1], start = starts[l];
      for (int p = 0; p < d.num_points; ++p) {
        const int lp = l * d.num_points + p;
        Corners<opmath_t> g;
        if (!g.set(start, height, width, item_loc[2 * lp], item_loc[2 * lp + 1])) continue;  // uniform in a group
        const opmath_t a = item_attn[lp], hx = 1 - g.lx, hy = 1 - g.ly;
        opmath_t sum_attn = 0, sum_x = 0, sum_y = 0;
        for (int c = lane * N; c < D; c += d.group * N) {
          opmath_t go[N], v[4][N];
          load<scalar_t, opmath_t, N>(grad_out + item * D + c, go);
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            if (g.key[i] < 0) {
#pragma unroll
              for (int j = 0; j < N; ++j) v[i][j] = 0;
              continue;
            }
            load<scalar_t, opmath_t, N>(value + head_offset + g.key[i] * stride + c, v[i]);
            const opmath_t w = a * g.weight[i];
            opmath_t grad[N];
#pragma unroll
            for (int j = 0; j < N; ++j) grad[j] = w * go[j];
            atomic_add<opmath_t, N>(grad_value + head_offset + g.key[i] * stride + c, grad);
          }
#pragma unroll
          for (int j = 0; j < N; ++j) {
            sum_attn += go[j] * (g.weight[0] * v[0][j] + g.weight[1] * v[1][j] + g.weight[2] * v[2][j] +
                                 g.weight[3] * v[3][j]);
            sum_x += go[j] * (hy * (v[1][j] - v[0][j]) + g.ly * (v[3][j] - v[2][j]));
            sum_y += go[j] * (hx * (v[2][j] - v[0][j]) + g.lx * (v[3][j] - v[1][j]));
          }
        }
        sum_attn = group_sum(sum_attn, d.group, mask);
        sum_x = group_sum(sum_x, d.group, mask);
        sum_y = group_sum(sum_y, d.group, mask);
        if (lane == 0) {
          grad_attn[item * LP + lp] = sum_attn;
          grad_loc[(item * LP + lp) * 2] = a * sum_x * width;
          grad_loc[(item * LP + lp) * 2 + 1] = a * sum_y * height;
        }
      }
    }
  }
}

// Channels per lane. Forward: a 16-byte vector of scalar_t. Backward: 4 (2 for float64), so that each lane's grad_value
// row is one 16-byte opmath_t vector. One channel when head_dims or the pointers' alignment do not allow it.
template <typename scalar_t>
constexpr int kForwardVector = 16 / sizeof(scalar_t);
template <typename scalar_t>
constexpr int kBackwardVector = sizeof(scalar_t) == 8 ? 2 : 4;

int pick_vector(int n, const at::Tensor& value, const at::Tensor& other) {
  const auto bytes = n * value.element_size();
  const auto aligned = [bytes](const at::Tensor& t) {
    return reinterpret_cast<uintptr_t>(t.const_data_ptr()) % bytes == 0;
  };
  return value.size(3) % n == 0 && aligned(value) && aligned(other) ? n : 1;
}

Dims dims(const at::Tensor& value, const at::Tensor& loc, int vector) {
  const int64_t chunks = (value.size(3) + vector - 1) / vector;
  int group = 1;
  while (group < 32 && group < chunks) group *= 2;
  return Dims{value.size(0) * loc.size(1) * value.size(2),
              loc.size(1),
              value.size(1),
              static_cast<int>(value.size(2)),
              static_cast<int>(value.size(3)),
              static_cast<int>(loc.size(3)),
              static_cast<int>(loc.size(4)),
              group};
}

int64_t blocks(const Dims& d) {
  return std::clamp<int64_t>((d.items * d.group + kThreads - 1) / kThreads, 1, int64_t{1} << 30);
}

void check_int_dims(const at::Tensor& value, const at::Tensor& loc) {
  TORCH_CHECK_VALUE(value.size(2) <= INT32_MAX && value.size(3) <= INT32_MAX &&
                        loc.size(3) * loc.size(4) <= INT32_MAX,
                    "num_heads, head_dims and num_levels * num_points must each fit in int32");
}

}  // namespace

at::Tensor ms_deform_attn_cuda(const at::Tensor& value_, const at::Tensor& spatial_shapes_,
                               const at::Tensor& level_start_index_, const at::Tensor& sampling_locations_,
                               const at::Tensor& attention_weights_) {
  check_ms_deform_attn_inputs(value_, spatial_shapes_, level_start_index_, sampling_locations_, attention_weights_);
  check_int_dims(value_, sampling_locations_);
  const c10::cuda::CUDAGuard guard(value_.device());
  const auto value = value_.contiguous(), shapes = spatial_shapes_.contiguous(),
             starts = level_start_index_.contiguous(), loc = sampling_locations_.contiguous(),
             attn = attention_weights_.contiguous();
  auto out = at::empty({value.size(0), loc.size(1), value.size(2) * value.size(3)}, value.options());
  if (out.numel() == 0) return out.zero_();
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, value.scalar_type(), "ms_deform_attn_cuda", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    constexpr int n = kForwardVector<scalar_t>;
    const int vector = pick_vector(n, value, out);
    const Dims d = dims(value, loc, vector);
    const auto launch = [&](auto kernel) {
      kernel<<<blocks(d), kThreads, 0, stream>>>(d, value.const_data_ptr<scalar_t>(), shapes.const_data_ptr<int64_t>(),
                                                 starts.const_data_ptr<int64_t>(), loc.const_data_ptr<opmath_t>(),
                                                 attn.const_data_ptr<opmath_t>(), out.mutable_data_ptr<scalar_t>());
    };
    vector == 1 ? launch(forward_kernel<scalar_t, 1>) : launch(forward_kernel<scalar_t, n>);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> ms_deform_attn_backward_cuda(
    const at::Tensor& value_, const at::Tensor& spatial_shapes_, const at::Tensor& level_start_index_,
    const at::Tensor& sampling_locations_, const at::Tensor& attention_weights_, const at::Tensor& grad_output_) {
  check_ms_deform_attn_inputs(value_, spatial_shapes_, level_start_index_, sampling_locations_, attention_weights_);
  check_int_dims(value_, sampling_locations_);
  const c10::cuda::CUDAGuard guard(value_.device());
  const auto value = value_.contiguous(), shapes = spatial_shapes_.contiguous(),
             starts = level_start_index_.contiguous(), loc = sampling_locations_.contiguous(),
             attn = attention_weights_.contiguous(), grad_output = grad_output_.contiguous();
  TORCH_CHECK_VALUE(grad_output.sizes() == at::IntArrayRef({value.size(0), loc.size(1), value.size(2) * value.size(3)}) &&
                        grad_output.scalar_type() == value.scalar_type() && grad_output.device() == value.device(),
                    "grad_output: expected ", value.scalar_type(), " (", value.size(0), ", ", loc.size(1), ", ",
                    value.size(2) * value.size(3), ") on ", value.device(), ", got ", grad_output.scalar_type(), " ",
                    grad_output.sizes(), " on ", grad_output.device());
  // grad_value is summed with atomics, in an order that varies from run to run
  at::globalContext().alertNotDeterministic("mmddetr::ms_deform_attn_backward (CUDA)");
  const auto opmath = value.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto grad_value = at::zeros(value.sizes(), value.options().dtype(opmath));
  auto grad_loc = at::zeros_like(loc), grad_attn = at::zeros_like(attn);
  if (grad_output.numel() > 0 && value.numel() > 0) {
    const auto stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, value.scalar_type(), "ms_deform_attn_backward_cuda", [&] {
      using opmath_t = at::opmath_type<scalar_t>;
      constexpr int n = kBackwardVector<scalar_t>;
      const int vector = pick_vector(n, value, grad_output);
      const Dims d = dims(value, loc, vector);
      const auto launch = [&](auto kernel) {
        kernel<<<blocks(d), kThreads, 0, stream>>>(
            d, value.const_data_ptr<scalar_t>(), shapes.const_data_ptr<int64_t>(), starts.const_data_ptr<int64_t>(),
            loc.const_data_ptr<opmath_t>(), attn.const_data_ptr<opmath_t>(), grad_output.const_data_ptr<scalar_t>(),
            grad_value.mutable_data_ptr<opmath_t>(), grad_loc.mutable_data_ptr<opmath_t>(),
            grad_attn.mutable_data_ptr<opmath_t>());
      };
      vector == 1 ? launch(backward_kernel<scalar_t, 1>) : launch(backward_kernel<scalar_t, n>);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return {grad_value.to(value.scalar_type()), grad_loc, grad_attn};
}

}  // namespace mmddetr

TORCH_LIBRARY_IMPL(mmddetr, CUDA, m) {
  m.impl("ms_deform_attn", &mmddetr::ms_deform_attn_cuda);
  m.impl("ms_deform_attn_backward", &mmddetr::ms_deform_attn_backward_cuda);
}
