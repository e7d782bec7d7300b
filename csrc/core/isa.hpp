// Kernels built twice: for the x86-64 baseline and, with GCC on x86-64, for AVX2. A
// kernel file includes its loops (a .inc) once per copy through core/isa_copies.inc
// (namespaces isa_base and isa_avx2) and picks a copy with MG_ISA_PICK at each call.
// The copies compute the same bytes (integer work, and float work without FMA:
// -ffp-contract=off); tests compare them. -DMODELGIT_NO_AVX2_COPY (CMake:
// -DMODELGIT_AVX2_COPY=OFF) builds the baseline copy alone.
#pragma once

#include <string>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(MODELGIT_NO_AVX2_COPY)
#define MG_AVX2_COPY 1
#define MG_AVX2_BEGIN _Pragma("GCC push_options") _Pragma("GCC target(\"avx2\")")
#define MG_AVX2_END _Pragma("GCC pop_options")
#define MG_ISA_PICK(call) (::modelgit::use_avx2() ? isa_avx2::call : isa_base::call)
#else
#define MG_ISA_PICK(call) (isa_base::call)
#endif

namespace modelgit {

// Whether the AVX2 copies run: where the CPU has AVX2, unless $MODELGIT_KERNELS is
// "baseline" (read at the first kernel call) or set_kernels said otherwise.
bool use_avx2();

// "auto" (the first choice again: AVX2 where the CPU has it, unless $MODELGIT_KERNELS
// is "baseline"), "baseline" or "avx2" (std::invalid_argument where there are no AVX2
// copies) sets the copies for the whole process; "" leaves them. Returns the copies in
// use: "baseline" or "avx2".
std::string set_kernels(const std::string& which);

}  // namespace modelgit
