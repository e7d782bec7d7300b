// Shared helpers of the native core: float conversions, threading, little-endian
// word access. Pure C++ (no Python): the Python buffer helpers live in
// bindings/core/pybuffer.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "core/params.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "modelgit's native core assumes a little-endian host"
#endif

#if defined(__GNUC__) || defined(__clang__)
#define MG_RESTRICT __restrict__
#else
#define MG_RESTRICT
#endif

namespace modelgit {

// Inputs of this many bytes or more are split across threads.
constexpr size_t kThreadThreshold = size_t(4) << 20;
constexpr int kMaxThreads = 256;

// ---- word access ------------------------------------------------------------------
template <typename T>
inline T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <typename T>
inline void store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

// Counts of each byte value of data[0..n), n < 2^34 - 16 (four u32 histograms), into
// count[256] (set, not added to). Four histograms break the store-to-load dependency on repeated bytes.
inline void byte_counts(const uint8_t* data, size_t n, uint64_t* count) {
  uint32_t h[4][256] = {};
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    ++h[0][data[i]];
    ++h[1][data[i + 1]];
    ++h[2][data[i + 2]];
    ++h[3][data[i + 3]];
  }
  for (; i < n; ++i) ++h[0][data[i]];
  for (int s = 0; s < 256; ++s) count[s] = uint64_t(h[0][s]) + h[1][s] + h[2][s] + h[3][s];
}

inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint64_t f64_bits(double f) {
  uint64_t u;
  std::memcpy(&u, &f, 8);
  return u;
}
inline double bits_f64(uint64_t u) {
  double f;
  std::memcpy(&f, &u, 8);
  return f;
}

// ---- float16 / bfloat16 conversions (by hand; no _Float16) ------------------------

// float16 -> float32, exact (subnormals normalised, inf/nan kept, payload shifted).
inline float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t man = h & 0x3FFu;
  uint32_t u;
  if (exp == 0x1F) {
    u = sign | 0x7F800000u | (man << 13);
  } else if (exp != 0) {
    u = sign | ((exp + 112u) << 23) | (man << 13);
  } else if (man == 0) {
    u = sign;
  } else {
    // subnormal: value = man * 2^-24; normalise
    int e = -1;
    do {
      man <<= 1;
      ++e;
    } while ((man & 0x400u) == 0);
    u = sign | (uint32_t(112 - e) << 23) | ((man & 0x3FFu) << 13);
  }
  return bits_f32(u);
}

// float32 -> float16, IEEE round-to-nearest-even, overflow to inf, subnormals.
// NaN: 0x7C00 | (mantissa >> 13), forced non-zero (numpy's rule); sign kept.
inline uint16_t f32_to_f16(float f) {
  uint32_t u = f32_bits(f);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7FFFFFFFu;
  if (a >= 0x7F800000u) {
    if (a == 0x7F800000u) return uint16_t(sign | 0x7C00u);
    uint32_t r = 0x7C00u | ((a & 0x7FFFFFu) >> 13);
    if (r == 0x7C00u) r = 0x7C01u;
    return uint16_t(sign | r);
  }
  if (a >= 0x477FF000u) return uint16_t(sign | 0x7C00u);  // >= 65520 rounds to inf
  if (a >= 0x38800000u) {                                  // normal float16 range
    uint32_t r = a - (112u << 23);
    r = (r + 0xFFFu + ((r >> 13) & 1u)) >> 13;
    return uint16_t(sign | r);
  }
  uint32_t e = a >> 23;
  if (e < 102) return uint16_t(sign);  // below half the smallest subnormal: 0
  uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
  uint32_t shift = 126u - e;  // 14..24
  uint32_t q = m >> shift;
  uint32_t rem = m & ((1u << shift) - 1u);
  uint32_t half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (q & 1u))) ++q;
  return uint16_t(sign | q);
}

inline float bf16_to_f32(uint16_t h) { return bits_f32(uint32_t(h) << 16); }

// float32 -> bfloat16, round-to-nearest-even: (u + 0x7FFF + ((u >> 16) & 1)) >> 16;
// NaN: (u >> 16) | 0x40 (quietened, sign and top payload kept).
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((u >> 16) | 0x40u);
  return uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// ---- dtypes (DType, dtype_size: core/params.hpp) ----------------------------------
// Exact widening of one element to double.
template <DType D>
inline double widen_f64(const uint8_t* p) {
  if constexpr (D == DType::F64) return load<double>(p);
  else if constexpr (D == DType::F32) return double(load<float>(p));
  else if constexpr (D == DType::F16) return double(f16_to_f32(load<uint16_t>(p)));
  else return double(bf16_to_f32(load<uint16_t>(p)));
}

// ---- rounding -----------------------------------------------------------------------
// Round-half-even of a double, valid for |v| < 2^52 (exact under the default rounding
// mode; does not depend on libm or SSE4.1).
inline double rint_even(double v) {
  const double magic = 4503599627370496.0;  // 2^52
  double a = std::fabs(v);
  if (a < magic) {
    double r = (a + magic) - magic;
    return std::copysign(r, v);
  }
  return v;
}

// ---- threading ------------------------------------------------------------------------
// Number of threads for an input of `nbytes` bytes: 1 below the threshold, else the
// requested count (0 = hardware threads), capped.
inline int resolve_threads(long long requested, size_t nbytes) {
  if (nbytes < kThreadThreshold) return 1;
  long long t = requested;
  if (t == 0) {
    unsigned hw = std::thread::hardware_concurrency();
    t = hw ? hw : 1;
  }
  return int(std::min<long long>(std::max<long long>(t, 1), kMaxThreads));
}

// Split [0, n) into at most `nthreads` contiguous ranges whose boundaries are
// multiples of `align`, and call f(chunk, begin, end) for each (chunk 0 on the
// calling thread). Returns the number of chunks used. `f` must not throw.
template <typename F>
inline int parallel_for(size_t n, int nthreads, size_t align, F&& f) {
  if (align == 0) align = 1;
  size_t units = (n + align - 1) / align;
  size_t nt = size_t(std::max(nthreads, 1));
  if (nt > units) nt = units ? units : 1;
  if (nt <= 1) {
    f(0, size_t(0), n);
    return 1;
  }
  auto bound = [&](size_t t) { return std::min(n, (units * t / nt) * align); };
  std::vector<std::thread> pool;
  pool.reserve(nt - 1);
  size_t started = 1;
  for (size_t t = 1; t < nt; ++t) {
    try {
      pool.emplace_back([&f, t, b = bound(t), e = bound(t + 1)] { f(int(t), b, e); });
      ++started;
    } catch (...) {
      break;  // could not start a thread: run the rest here
    }
  }
  f(0, size_t(0), bound(1));
  for (size_t t = started; t < nt; ++t) f(int(t), bound(t), bound(t + 1));
  for (auto& th : pool) th.join();
  return int(nt);
}

}  // namespace modelgit
