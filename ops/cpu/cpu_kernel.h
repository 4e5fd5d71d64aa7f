// The CPU kernels in two variants, x86-64-v3 ("avx2": AVX2, FMA, BMI2, ...) and baseline x86-64 ("baseline"), and
// which one runs. A kernel's body is a lambda that run_cpu_kernel calls through one of two functions compiled for
// those targets; the lambda and the kernels' helpers are forced inline, so each variant compiles them for its own
// target. The variant is chosen explicitly (not by the loader's ifunc resolution as with target_clones), so that the
// baseline can be tested on machines that have AVX2.
#pragma once

#include <string>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MMDDETR_HAS_AVX2_KERNEL 1
#endif
#define MMDDETR_INLINE inline __attribute__((always_inline))
#define MMDDETR_INLINE_LAMBDA __attribute__((always_inline))  // after a lambda's parameter list

namespace mmddetr {

enum class CpuKernel { kBaseline, kAvx2 };

// The variant every CPU kernel runs in this process, from MMDDETR_CPU_KERNEL=baseline|avx2|auto (unset or empty:
// auto, which is avx2 where the CPU has x86-64-v3), read at the first call: not at load, so that a bad value is a
// ValueError from the first op call, never an exception during the library's static initialisation. avx2 on a CPU
// (or a build) without it is a ValueError too, not SIGILL.
CpuKernel cpu_kernel();

// "<variant> (MMDDETR_CPU_KERNEL=<setting>)", for mmddetr.ops.extension_status().
std::string cpu_kernel_description();

template <typename F>
#ifdef MMDDETR_HAS_AVX2_KERNEL
__attribute__((target("arch=x86-64-v3")))
#endif
void run_avx2(const F& fn) {
  fn();
}

template <typename F>
void run_baseline(const F& fn) {
  fn();
}

// Runs fn, a lambda declared `[&]() MMDDETR_INLINE_LAMBDA { ... }`, in `kernel`'s variant. Callers take `kernel` from
// cpu_kernel() before their parallel region, so that a configuration error is thrown outside it.
template <typename F>
void run_cpu_kernel(CpuKernel kernel, const F& fn) {
  kernel == CpuKernel::kAvx2 ? run_avx2(fn) : run_baseline(fn);
}

}  // namespace mmddetr
