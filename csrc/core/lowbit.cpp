#include "core/lowbit.hpp"

#include <atomic>

#include "core/common.hpp"

namespace modelgit {
namespace {

inline bool finite_f(float f) { return (f32_bits(f) & 0x7F800000u) != 0x7F800000u; }

// Packs cnt codes (already < 2**BITS) into out; the first code goes to bit 0 of out[0].
template <int BITS>
void pack_range(const uint8_t* MG_RESTRICT c, uint8_t* MG_RESTRICT o, size_t cnt) {
  constexpr size_t PER = 8 / BITS;  // codes per byte
  if constexpr (BITS == 8) {
    std::memcpy(o, c, cnt);
  } else {
    const size_t full = cnt / PER;
    for (size_t j = 0; j < full; ++j) {
      uint32_t v = 0;
      for (size_t k = 0; k < PER; ++k) v |= uint32_t(c[j * PER + k]) << (k * BITS);
      o[j] = uint8_t(v);
    }
    if (full * PER < cnt) {
      uint32_t v = 0;
      for (size_t k = 0; full * PER + k < cnt; ++k) v |= uint32_t(c[full * PER + k]) << (k * BITS);
      o[full] = uint8_t(v);
    }
  }
}

template <int BITS>
void unpack_range(const uint8_t* MG_RESTRICT p, uint8_t* MG_RESTRICT c, size_t cnt) {
  constexpr size_t PER = 8 / BITS;
  constexpr uint32_t MASK = (1u << BITS) - 1u;
  if constexpr (BITS == 8) {
    std::memcpy(c, p, cnt);
  } else {
    const size_t full = cnt / PER;
    for (size_t j = 0; j < full; ++j) {
      const uint32_t v = p[j];
      for (size_t k = 0; k < PER; ++k) c[j * PER + k] = uint8_t((v >> (k * BITS)) & MASK);
    }
    if (full * PER < cnt) {
      const uint32_t v = p[full];
      for (size_t k = 0; full * PER + k < cnt; ++k)
        c[full * PER + k] = uint8_t((v >> (k * BITS)) & MASK);
    }
  }
}

template <typename F>
void dispatch_bits(int bits, F&& f) {
  switch (bits) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    default: f(std::integral_constant<int, 8>{}); break;
  }
}

// Per-group statistics: scale and offset (see _core.pyi).
void group_stats(const uint8_t* x, size_t n, int bits, float& scale, float& offset) {
  if (bits == 1) {
    double sum = 0.0;
    size_t cnt = 0;
    for (size_t i = 0; i < n; ++i) {
      const float v = load<float>(x + i * 4);
      if (finite_f(v)) {
        sum += std::fabs(double(v));
        ++cnt;
      }
    }
    scale = cnt ? float(sum / double(cnt)) : 0.0f;
    offset = 0.0f;
    return;
  }
  float lo = 0.0f, hi = 0.0f;
  bool any = false;
  for (size_t i = 0; i < n; ++i) {
    const float v = load<float>(x + i * 4);
    if (!finite_f(v)) continue;
    if (!any) {
      lo = hi = v;
      any = true;
    } else {
      // -0.0 orders below +0.0, so the result does not depend on the element order
      lo = (v < lo || (v == lo && std::signbit(v))) ? v : lo;
      hi = (v > hi || (v == hi && !std::signbit(v))) ? v : hi;
    }
  }
  const double L = double((1u << bits) - 1u);
  scale = float((double(hi) - double(lo)) / L);
  offset = lo;
}

// Codes of x[i0, i1) into c (uint8 per element).
void codes_range(const uint8_t* x, const float* scales, const float* offsets, size_t group, int bits,
                 uint8_t* c, size_t i0, size_t i1) {
  const double L = double((1u << bits) - 1u);
  size_t i = i0;
  while (i < i1) {
    const size_t g = i / group;
    const size_t gend = std::min(i1, (g + 1) * group);
    if (bits == 1) {
      for (; i < gend; ++i) {
        const float v = load<float>(x + i * 4);
        c[i - i0] = (v >= 0.0f || v != v) ? 1 : 0;
      }
      continue;
    }
    const float scale = scales[g];
    const double lo = double(offsets[g]), ds = double(scale);
    if (scale == 0.0f) {
      for (; i < gend; ++i) c[i - i0] = 0;
      continue;
    }
    for (; i < gend; ++i) {
      const float v = load<float>(x + i * 4);
      if (!finite_f(v)) {
        c[i - i0] = 0;
        continue;
      }
      double q = rint_even((double(v) - lo) / ds);
      q = q < 0.0 ? 0.0 : (q > L ? L : q);
      c[i - i0] = uint8_t(q);
    }
  }
}

}  // namespace

void lowbit_quantize(const uint8_t* x, size_t n, int bits, size_t group, uint8_t* packed,
                     uint8_t* scales, uint8_t* offsets, int nthreads) {
  if (n == 0) return;
  const size_t ngroups = (n + group - 1) / group;
  std::vector<float> sc(ngroups), of(ngroups);
  parallel_for(ngroups, nthreads, 1, [&](int, size_t g0, size_t g1) {
    for (size_t g = g0; g < g1; ++g) {
      const size_t b = g * group, e = std::min(n, b + group);
      group_stats(x + b * 4, e - b, bits, sc[g], of[g]);
    }
  });
  std::memcpy(scales, sc.data(), ngroups * 4);
  std::memcpy(offsets, of.data(), ngroups * 4);
  dispatch_bits(bits, [&](auto bb) {
    constexpr int B = decltype(bb)::value;
    parallel_for(n, nthreads, 4096, [&](int, size_t i0, size_t i1) {
      constexpr size_t CH = 4096;
      alignas(64) uint8_t c[CH];
      for (size_t i = i0; i < i1; i += CH) {
        const size_t e = std::min(i1, i + CH);
        codes_range(x, sc.data(), of.data(), group, B, c, i, e);
        pack_range<B>(c, packed + i / (8 / B), e - i);
      }
    });
  });
}

void lowbit_dequantize(const uint8_t* packed, const uint8_t* scales, const uint8_t* offsets,
                       int bits, size_t group, size_t n, uint8_t* out, int nthreads) {
  if (n == 0) return;
  dispatch_bits(bits, [&](auto bb) {
    constexpr int B = decltype(bb)::value;
    parallel_for(n, nthreads, 4096, [&](int, size_t i0, size_t i1) {
      constexpr size_t CH = 4096;
      alignas(64) uint8_t c[CH];
      alignas(64) float o[CH];
      for (size_t i = i0; i < i1; i += CH) {
        const size_t e = std::min(i1, i + CH);
        unpack_range<B>(packed + i / (8 / B), c, e - i);
        size_t j = i;
        while (j < e) {
          const size_t g = j / group;
          const size_t gend = std::min(e, (g + 1) * group);
          const float scale = load<float>(scales + g * 4);
          if constexpr (B == 1) {
            const float neg = -scale;
            for (; j < gend; ++j) o[j - i] = c[j - i] ? scale : neg;
          } else {
            const float off = load<float>(offsets + g * 4);
            for (; j < gend; ++j) {
              const float prod = float(c[j - i]) * scale;
              o[j - i] = prod + off;
            }
          }
        }
        std::memcpy(out + i * 4, o, (e - i) * 4);
      }
    });
  });
}

bool pack_bits(const uint8_t* codes, size_t n, int bits, uint8_t* out, int nthreads) {
  if (n == 0) return true;
  std::atomic<bool> ok{true};
  dispatch_bits(bits, [&](auto bb) {
    constexpr int B = decltype(bb)::value;
    parallel_for(n, nthreads, 4096, [&](int, size_t i0, size_t i1) {
      if constexpr (B < 8) {
        uint8_t bad = 0;
        for (size_t i = i0; i < i1; ++i) bad |= uint8_t(codes[i] >> B);
        if (bad) {
          ok.store(false, std::memory_order_relaxed);
          return;
        }
      }
      pack_range<B>(codes + i0, out + i0 / (8 / B), i1 - i0);
    });
  });
  return ok.load();
}

void unpack_bits(const uint8_t* packed, size_t n, int bits, uint8_t* out, int nthreads) {
  if (n == 0) return;
  dispatch_bits(bits, [&](auto bb) {
    constexpr int B = decltype(bb)::value;
    parallel_for(n, nthreads, 4096,
                 [&](int, size_t i0, size_t i1) {
                   unpack_range<B>(packed + i0 / (8 / B), out + i0, i1 - i0);
                 });
  });
}

}  // namespace modelgit
