// Selection of the CPU kernels' variant (cpu_kernel.h) and the op that reports it, mmddetr::cpu_kernel.
#include "cpu_kernel.h"

#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cstdlib>
#include <string>

namespace mmddetr {
namespace {

constexpr const char* kVariable = "MMDDETR_CPU_KERNEL";

struct Selection {
  CpuKernel kernel;
  std::string setting;
};

bool cpu_has_avx2_kernel() {
#ifdef MMDDETR_HAS_AVX2_KERNEL
  __builtin_cpu_init();
  return __builtin_cpu_supports("x86-64-v3");
#else
  return false;
#endif
}

Selection select() {
  const char* value = std::getenv(kVariable);
  const std::string setting = value == nullptr || *value == '\0' ? "auto" : value;
  TORCH_CHECK_VALUE(setting == "auto" || setting == "baseline" || setting == "avx2", kVariable,
                    " must be baseline, avx2 or auto, got '", setting, "'");
  if (setting == "baseline") return {CpuKernel::kBaseline, setting};
#ifndef MMDDETR_HAS_AVX2_KERNEL
  TORCH_CHECK_VALUE(setting == "auto", kVariable, "=avx2, but this build has the baseline kernel only (the avx2 ",
                    "variant needs GCC on x86-64)");
#endif
  const bool avx2 = cpu_has_avx2_kernel();
  TORCH_CHECK_VALUE(avx2 || setting == "auto", kVariable,
                    "=avx2, but this CPU lacks x86-64-v3 (AVX2, FMA, BMI2, ...); use baseline or auto");
  return {avx2 ? CpuKernel::kAvx2 : CpuKernel::kBaseline, setting};
}

// Thread-safe, once per process; a throw leaves it unset, so every later call reports the same error.
const Selection& selection() {
  static const Selection selected = select();
  return selected;
}

}  // namespace

CpuKernel cpu_kernel() { return selection().kernel; }

std::string cpu_kernel_description() {
  const Selection& s = selection();
  return std::string(s.kernel == CpuKernel::kAvx2 ? "avx2" : "baseline") + " (" + kVariable + "=" + s.setting + ")";
}

}  // namespace mmddetr

TORCH_LIBRARY_FRAGMENT(mmddetr, m) { m.def("cpu_kernel() -> str", &mmddetr::cpu_kernel_description); }
