#include "core/isa.hpp"

#include <atomic>
#include <cstdlib>
#include <strings.h>  // strcasecmp
#include <stdexcept>

namespace modelgit {
namespace {

bool have_avx2() {
#ifdef MG_AVX2_COPY
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
#else
  return false;
#endif
}

std::atomic<int> g_avx2{-1};  // -1: not chosen yet

}  // namespace

// The first choice: AVX2 where the CPU has it, unless $MODELGIT_KERNELS is "baseline"
// (in any case; other values change nothing).
int first_choice() {
  const char* env = std::getenv("MODELGIT_KERNELS");
  if (env != nullptr && strcasecmp(env, "baseline") == 0) return 0;
  return have_avx2() ? 1 : 0;
}

bool use_avx2() {
  int k = g_avx2.load(std::memory_order_relaxed);
  if (k < 0) {
    k = first_choice();
    g_avx2.store(k, std::memory_order_relaxed);
  }
  return k == 1;
}

std::string set_kernels(const std::string& which) {
  if (which == "avx2") {
    if (!have_avx2()) throw std::invalid_argument("this CPU (or build) has no AVX2 kernels");
    g_avx2.store(1);
  } else if (which == "baseline") {
    g_avx2.store(0);
  } else if (which == "auto") {
    g_avx2.store(first_choice());
  } else if (!which.empty()) {
    throw std::invalid_argument("kernels: 'auto', 'baseline' or 'avx2', not '" + which + "'");
  }
  return use_avx2() ? "avx2" : "baseline";
}

}  // namespace modelgit
