// Float casts bit-exact with torch's CPU kernels (x86-64): see core/cast.hpp and
// docs/FORMAT.md section 3.3. Every conversion goes through float32, as torch's does:
//   to float32:  float64 round-to-nearest-even (NaN: sign kept, quiet bit set, payload's
//                top 22 bits kept); float16 exact (NaN quieted, payload << 13); bfloat16
//                exact (bits << 16; signalling NaNs stay signalling);
//   from float32: float64 exact (NaN quieted, payload << 29); float16 round-to-nearest-
//                even (NaN: sign kept, 0x7E00 | payload >> 13); bfloat16 round-to-nearest-
//                even (NaN: 0xFFFF).
// One exception: float16 -> bfloat16 turns NaN into 0x7FC0.
#include "core/cast.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/common.hpp"
#include "core/isa.hpp"

namespace modelgit {
namespace {

constexpr size_t kCastBlock = 4096;

inline bool is_nan32(uint32_t u) { return (u & 0x7FFFFFFFu) > 0x7F800000u; }

inline uint32_t f64_to_f32_bits(uint64_t u) {
  if ((u & 0x7FFFFFFFFFFFFFFFull) > 0x7FF0000000000000ull)
    return uint32_t((u >> 32) & 0x80000000u) | 0x7FC00000u | uint32_t((u >> 29) & 0x7FFFFFu);
  return f32_bits(float(bits_f64(u)));  // the host's IEEE conversion: round to nearest even
}

inline uint64_t f32_to_f64_bits(uint32_t u) {
  if (is_nan32(u))
    return (uint64_t(u & 0x80000000u) << 32) | 0x7FF8000000000000ull |
           (uint64_t(u & 0x7FFFFFu) << 29);
  return f64_bits(double(bits_f32(u)));  // exact
}

inline uint32_t f16_to_f32_bits(uint16_t h) {
  if ((h & 0x7FFFu) > 0x7C00u)
    return (uint32_t(h & 0x8000u) << 16) | 0x7FC00000u | (uint32_t(h & 0x3FFu) << 13);
  return f32_bits(f16_to_f32(h));  // exact
}

inline uint16_t f32_to_f16_bits(uint32_t u) {
  if (is_nan32(u)) return uint16_t(((u >> 16) & 0x8000u) | 0x7E00u | ((u >> 13) & 0x3FFu));
  return f32_to_f16(bits_f32(u));  // round to nearest even, overflow to inf, subnormals
}

inline uint16_t f32_to_bf16_bits(uint32_t u) {
  if (is_nan32(u)) return 0xFFFFu;
  return uint16_t((uint64_t(u) + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// float32 a + b and a / k as torch computes them on x86-64, spelled out so that every
// host gives the same bits: a NaN operand gives that NaN quieted (the second one when
// both are NaN), and a NaN made from numbers (inf - inf) is 0xFFC00000.
inline uint32_t add_f32(uint32_t a, uint32_t b) {
  if (is_nan32(b)) return b | 0x400000u;
  if (is_nan32(a)) return a | 0x400000u;
  uint32_t r = f32_bits(bits_f32(a) + bits_f32(b));
  return is_nan32(r) ? 0xFFC00000u : r;
}

inline uint32_t div_f32(uint32_t a, float k) {  // k: a whole number >= 1
  if (is_nan32(a)) return a | 0x400000u;
  return f32_bits(bits_f32(a) / k);
}

inline uint32_t to_f32(const uint8_t* p, DType s) {
  switch (s) {
    case DType::F64: return f64_to_f32_bits(load<uint64_t>(p));
    case DType::F32: return load<uint32_t>(p);
    case DType::F16: return f16_to_f32_bits(load<uint16_t>(p));
    default: return uint32_t(load<uint16_t>(p)) << 16;
  }
}

inline void from_f32(uint32_t u, uint8_t* p, DType d) {
  switch (d) {
    case DType::F64: store<uint64_t>(p, f32_to_f64_bits(u)); break;
    case DType::F32: store<uint32_t>(p, u); break;
    case DType::F16: store<uint16_t>(p, f32_to_f16_bits(u)); break;
    default: store<uint16_t>(p, f32_to_bf16_bits(u)); break;
  }
}

}  // namespace

#define MG_KERNELS_FILE "core/cast_kernels.inc"
#include "core/isa_copies.inc"

namespace {

constexpr uint32_t kCanonicalNaN = 0x7FC00000u;

inline double to_f64(const uint8_t* p, DType s) {
  if (s == DType::F64) return bits_f64(load<uint64_t>(p));
  return double(bits_f32(to_f32(p, s)));  // exact
}

// The float64 value v stored as d: float64 as is; the others through float32, as cast.
inline void store_f64(double v, uint8_t* p, DType d) {
  if (v != v) {
    from_f32(kCanonicalNaN, p, d);
  } else if (d == DType::F64) {
    store<uint64_t>(p, f64_bits(v));
  } else {
    from_f32(f32_bits(float(v)), p, d);
  }
}

// R: a float32 result rounded to d and widened back (the identity for float32).
inline float round_to(float v, DType d) {
  if (v != v) return bits_f32(kCanonicalNaN);
  switch (d) {
    case DType::F16: return bits_f32(f16_to_f32_bits(f32_to_f16_bits(f32_bits(v))));
    case DType::BF16: return bits_f32(uint32_t(f32_to_bf16_bits(f32_bits(v))) << 16);
    default: return v;
  }
}

template <typename T>
inline T nan_free(T v) {
  return v != v ? T(bits_f32(kCanonicalNaN)) : v;
}

void linear_exact(const uint8_t* const* srcs, const double* c, int k, DType s, uint8_t* dst,
                  DType d, size_t i0, size_t i1) {
  const size_t es = dtype_size(s), ed = dtype_size(d);
  for (size_t i = i0; i < i1; ++i) {
    double acc = 0.0;
    bool nan = false;
    for (int j = 0; j < k; ++j) {
      const double x = to_f64(srcs[j] + i * es, s);
      nan |= x != x;
      acc = acc + c[j] * x;
    }
    store_f64(nan ? std::nan("") : acc, dst + i * ed, d);
  }
}

void linear_seq64(const uint8_t* const* srcs, const double* c, int k, bool anchored,
                  uint8_t* dst, size_t i0, size_t i1) {
  for (size_t i = i0; i < i1; ++i) {
    const double x0 = bits_f64(load<uint64_t>(srcs[0] + i * 8));
    double acc = anchored ? x0 : nan_free(c[0] * x0);
    for (int j = 1; j < k; ++j) {
      double x = bits_f64(load<uint64_t>(srcs[j] + i * 8));
      if (anchored) x = nan_free(x - x0);
      acc = nan_free(acc + nan_free(c[j] * x));
    }
    store_f64(acc, dst + i * 8, DType::F64);
  }
}

void linear_seq32(const uint8_t* const* srcs, const float* c, int k, bool anchored, DType d,
                  uint8_t* dst, size_t i0, size_t i1) {
  const size_t e = dtype_size(d);
  for (size_t i = i0; i < i1; ++i) {
    const float x0 = bits_f32(to_f32(srcs[0] + i * e, d));
    float acc = anchored ? round_to(x0, d) : round_to(c[0] * x0, d);
    for (int j = 1; j < k; ++j) {
      float x = bits_f32(to_f32(srcs[j] + i * e, d));
      if (anchored) x = round_to(x - x0, d);
      acc = round_to(acc + round_to(c[j] * x, d), d);
    }
    from_f32(f32_bits(acc), dst + i * e, d);
  }
}

}  // namespace

void linear_cast(const uint8_t* const* srcs, const double* coeffs, int k, DType s,
                 uint8_t* dst, DType d, size_t n, Combine mode, int nthreads) {
  if (n == 0) return;
  float c32[256];
  for (int j = 0; j < k && j < 256; ++j) c32[j] = float(coeffs[j]);
  const bool anchored = mode == Combine::Anchored;
  parallel_for(n, nthreads, kCastBlock, [&](int, size_t b, size_t e) {
    if (b >= e) return;
    if (mode == Combine::Exact) {
      linear_exact(srcs, coeffs, k, s, dst, d, b, e);
    } else if (d == DType::F64) {
      linear_seq64(srcs, coeffs, k, anchored, dst, b, e);
    } else {
      linear_seq32(srcs, c32, k, anchored, d, dst, b, e);
    }
  });
}

void cast(const uint8_t* src, DType s, uint8_t* dst, DType d, size_t n, int nthreads) {
  if (n == 0) return;
  if (s == d) {
    if (src != dst) std::memmove(dst, src, n * dtype_size(s));
    return;
  }
  isa_base::CastFn fn = MG_ISA_PICK(pick(s, d));
  parallel_for(n, nthreads, kCastBlock, [&](int, size_t b, size_t e) {
    if (b < e) fn(src, dst, b, e);
  });
}

void mean_cast(const uint8_t* const* srcs, int k, DType s, uint8_t* dst, DType d, size_t n,
               int nthreads) {
  if (n == 0) return;
  const size_t es = dtype_size(s), ed = dtype_size(d);
  const float div = float(k);
  parallel_for(n, nthreads, kCastBlock, [&](int, size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      uint32_t acc = to_f32(srcs[0] + i * es, s);
      for (int j = 1; j < k; ++j) acc = add_f32(acc, to_f32(srcs[j] + i * es, s));
      from_f32(div_f32(acc, div), dst + i * ed, d);
    }
  });
}

}  // namespace modelgit
