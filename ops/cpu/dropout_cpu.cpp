// Dropout with a counter-based mask (CPU). Element i of the contiguous input is kept when
// hash(seed, i) >= p * 2^32 and then scaled by 1 / (1 - p), so each element is dropped with probability p (to within
// 2^-32) as in torch.nn.functional.dropout. The mask is a pure function of (seed, i): the backward is this op applied
// to the gradient with the same seed, no mask is stored, and results do not depend on the number of threads.
// Dropped elements are multiplied by 0 rather than set to 0, so NaN and inf propagate as they do in torch.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cpu_kernel.h"

namespace mmddetr {
namespace {

constexpr int64_t kBlock = 1 << 16;  // elements per hash key; the key of block b is splitmix64(seed + b)

MMDDETR_INLINE uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

MMDDETR_INLINE uint32_t mix32(uint32_t x) {  // a bijective 32-bit finaliser (good avalanche)
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  return x ^ (x >> 16);
}

template <typename scalar_t>
MMDDETR_INLINE void dropout_blocks(const scalar_t* in, scalar_t* out, int64_t numel, int64_t block_begin,
                                   int64_t block_end, uint64_t seed, uint32_t threshold,
                                   at::opmath_type<scalar_t> scale) {
  using opmath_t = at::opmath_type<scalar_t>;
  for (int64_t block = block_begin; block < block_end; ++block) {
    const uint64_t key = splitmix64(seed + static_cast<uint64_t>(block));
    const uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
    const int64_t begin = block * kBlock, size = std::min(kBlock, numel - begin);
    const scalar_t* x = in + begin;
    scalar_t* y = out + begin;
#pragma omp simd
    for (int64_t j = 0; j < size; ++j) {
      const uint32_t u = mix32(mix32(static_cast<uint32_t>(j) + k0) ^ k1);
      y[j] = static_cast<scalar_t>(static_cast<opmath_t>(x[j]) * (u >= threshold ? scale : opmath_t(0)));
    }
  }
}

at::Tensor dropout_cpu(const at::Tensor& input_, double p, int64_t seed) {
  TORCH_CHECK_VALUE(p >= 0 && p <= 1, "p: expected a dropout probability in [0, 1], got ", p);
  TORCH_CHECK_VALUE(at::isFloatingType(input_.scalar_type()), "input: expected a floating dtype, got ",
                    input_.scalar_type());
  const CpuKernel kernel = cpu_kernel();
  const auto input = input_.contiguous();
  auto out = at::empty_like(input);
  // p == 1: keep everything with scale 0 (the threshold 2^32 would not fit in 32 bits).
  const double threshold = p >= 1 ? 0.0 : std::ceil(p * 4294967296.0);
  const int64_t numel = input.numel(), blocks = (numel + kBlock - 1) / kBlock;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, input.scalar_type(), "dropout_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const opmath_t scale = p >= 1 ? opmath_t(0) : static_cast<opmath_t>(1.0 / (1.0 - p));
    at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
      run_cpu_kernel(kernel, [&]() MMDDETR_INLINE_LAMBDA {
        dropout_blocks<scalar_t>(input.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), numel, begin,
                                 end, static_cast<uint64_t>(seed), static_cast<uint32_t>(threshold), scale);
      });
    });
  });
  return out;
}

}  // namespace
}  // namespace mmddetr

TORCH_LIBRARY_FRAGMENT(mmddetr, m) { m.def("dropout(Tensor input, float p, int seed) -> Tensor"); }

TORCH_LIBRARY_IMPL(mmddetr, CPU, m) { m.impl("dropout", &mmddetr::dropout_cpu); }
