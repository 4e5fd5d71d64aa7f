// Function multi-versioning of the CPU kernels: each range function is compiled for x86-64-v3 (AVX2 + FMA) and for
// baseline x86-64, and the loader picks one. Helpers are forced inline so that each clone compiles them for its
// own target.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MMDDETR_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define MMDDETR_CPU_CLONES
#endif
#define MMDDETR_INLINE inline __attribute__((always_inline))
