#include "core/planes.hpp"

#include "core/common.hpp"

#include <type_traits>

namespace modelgit {
namespace {

constexpr size_t kBlock = 2048;  // words per block: the block's words stay in L1

template <typename T>
inline T rotl1(T x) {
  return T(T(x << 1) | T(x >> (sizeof(T) * 8 - 1)));
}
template <typename T>
inline T rotr1(T x) {
  return T(T(x >> 1) | T(x << (sizeof(T) * 8 - 1)));
}
// Sign-magnitude (IEEE float) bit pattern -> an integer that orders like the value
// (negative: all bits but the sign flipped). An involution.
template <typename T>
inline T ordered(T x) {
  using S = std::make_signed_t<T>;
  const T neg = T(S(x) >> (sizeof(T) * 8 - 1));  // all ones when the sign bit is set
  return T(x ^ T(neg >> 1));
}
template <typename T>
inline T zigzag(T d) {
  using S = std::make_signed_t<T>;
  return T(T(d << 1) ^ T(S(d) >> (sizeof(T) * 8 - 1)));
}
template <typename T>
inline T unzigzag(T z) {
  return T(T(z >> 1) ^ T(T(0) - T(z & 1)));
}

// Scatter the bytes of n words into the planes (plane p at dst + p*m).
template <typename T>
inline void scatter(const T* MG_RESTRICT w, uint8_t* MG_RESTRICT dst, size_t m, size_t n) {
  constexpr int E = sizeof(T);
  if constexpr (E == 1) {
    std::memcpy(dst, w, n);
  } else if constexpr (E == 2) {
    uint8_t* MG_RESTRICT o0 = dst;
    uint8_t* MG_RESTRICT o1 = dst + m;
    for (size_t j = 0; j < n; ++j) {
      o0[j] = uint8_t(w[j] >> 8);
      o1[j] = uint8_t(w[j]);
    }
  } else if constexpr (E == 4) {
    uint8_t* MG_RESTRICT o0 = dst;
    uint8_t* MG_RESTRICT o1 = dst + m;
    uint8_t* MG_RESTRICT o2 = dst + 2 * m;
    uint8_t* MG_RESTRICT o3 = dst + 3 * m;
    for (size_t j = 0; j < n; ++j) {
      const uint32_t v = w[j];
      o0[j] = uint8_t(v >> 24);
      o1[j] = uint8_t(v >> 16);
      o2[j] = uint8_t(v >> 8);
      o3[j] = uint8_t(v);
    }
  } else {
    alignas(64) uint32_t half[kBlock];
    for (int h = 0; h < 2; ++h) {
      for (size_t j = 0; j < n; ++j) half[j] = uint32_t(w[j] >> (32 * (1 - h)));
      uint8_t* MG_RESTRICT o0 = dst + size_t(4 * h) * m;
      uint8_t* MG_RESTRICT o1 = o0 + m;
      uint8_t* MG_RESTRICT o2 = o1 + m;
      uint8_t* MG_RESTRICT o3 = o2 + m;
      for (size_t j = 0; j < n; ++j) {
        const uint32_t v = half[j];
        o0[j] = uint8_t(v >> 24);
        o1[j] = uint8_t(v >> 16);
        o2[j] = uint8_t(v >> 8);
        o3[j] = uint8_t(v);
      }
    }
  }
}

// Gather n words from the planes (plane p at src[p], from word offset i).
template <typename T>
inline void gather(const uint8_t* const* src, size_t i, T* MG_RESTRICT w, size_t n) {
  constexpr int E = sizeof(T);
  if constexpr (E == 1) {
    std::memcpy(w, src[0] + i, n);
  } else if constexpr (E == 2) {
    const uint8_t* MG_RESTRICT s0 = src[0] + i;
    const uint8_t* MG_RESTRICT s1 = src[1] + i;
    for (size_t j = 0; j < n; ++j) w[j] = T((T(s0[j]) << 8) | T(s1[j]));
  } else if constexpr (E == 4) {
    const uint8_t* MG_RESTRICT s0 = src[0] + i;
    const uint8_t* MG_RESTRICT s1 = src[1] + i;
    const uint8_t* MG_RESTRICT s2 = src[2] + i;
    const uint8_t* MG_RESTRICT s3 = src[3] + i;
    for (size_t j = 0; j < n; ++j)
      w[j] = (T(s0[j]) << 24) | (T(s1[j]) << 16) | (T(s2[j]) << 8) | T(s3[j]);
  } else {
    // two 32-bit halves: narrower lanes vectorize better than 64-bit ones
    const uint8_t* MG_RESTRICT s0 = src[0] + i;
    const uint8_t* MG_RESTRICT s1 = src[1] + i;
    const uint8_t* MG_RESTRICT s2 = src[2] + i;
    const uint8_t* MG_RESTRICT s3 = src[3] + i;
    const uint8_t* MG_RESTRICT s4 = src[4] + i;
    const uint8_t* MG_RESTRICT s5 = src[5] + i;
    const uint8_t* MG_RESTRICT s6 = src[6] + i;
    const uint8_t* MG_RESTRICT s7 = src[7] + i;
    alignas(64) uint32_t hi[kBlock], lo[kBlock];
    for (size_t j = 0; j < n; ++j)
      hi[j] = (uint32_t(s0[j]) << 24) | (uint32_t(s1[j]) << 16) | (uint32_t(s2[j]) << 8) |
              uint32_t(s3[j]);
    for (size_t j = 0; j < n; ++j)
      lo[j] = (uint32_t(s4[j]) << 24) | (uint32_t(s5[j]) << 16) | (uint32_t(s6[j]) << 8) |
              uint32_t(s7[j]);
    for (size_t j = 0; j < n; ++j) w[j] = (T(hi[j]) << 32) | T(lo[j]);
  }
}

template <typename T, int DELTA, bool ROT>
void encode_range(const uint8_t* MG_RESTRICT x, const uint8_t* MG_RESTRICT b,
                  uint8_t* MG_RESTRICT out, size_t m, size_t i0, size_t i1) {
  constexpr size_t E = sizeof(T);
  alignas(64) T w[kBlock];
  for (size_t i = i0; i < i1; i += kBlock) {
    const size_t n = std::min(kBlock, i1 - i);
    const uint8_t* xs = x + i * E;
    if constexpr (DELTA == DELTA_NONE) {
      if constexpr (ROT) {
        for (size_t j = 0; j < n; ++j) w[j] = rotl1(load<T>(xs + j * E));
      } else if (reinterpret_cast<uintptr_t>(xs) % alignof(T) == 0) {
        scatter<T>(reinterpret_cast<const T*>(xs), out + i, m, n);  // no staging copy
        continue;
      } else {
        std::memcpy(w, xs, n * E);
      }
    } else {
      const uint8_t* bs = b + i * E;
      for (size_t j = 0; j < n; ++j) {
        T t = load<T>(xs + j * E), tb = load<T>(bs + j * E);
        if constexpr (ROT) {
          t = rotl1(t);
          tb = rotl1(tb);
        }
        if constexpr (DELTA == DELTA_XOR) w[j] = T(t ^ tb);
        else if constexpr (DELTA == DELTA_OSUB) w[j] = zigzag(T(ordered(t) - ordered(tb)));
        else w[j] = T(t - tb);
      }
    }
    scatter<T>(w, out + i, m, n);
  }
}

template <typename T, int DELTA, bool ROT>
void decode_range(const uint8_t* const* pl, const uint8_t* MG_RESTRICT b,
                  uint8_t* MG_RESTRICT out, size_t i0, size_t i1) {
  constexpr size_t E = sizeof(T);
  alignas(64) T w[kBlock];
  for (size_t i = i0; i < i1; i += kBlock) {
    const size_t n = std::min(kBlock, i1 - i);
    gather<T>(pl, i, w, n);
    uint8_t* os = out + i * E;
    if constexpr (DELTA == DELTA_NONE) {
      if constexpr (ROT) {
        for (size_t j = 0; j < n; ++j) store<T>(os + j * E, rotr1(w[j]));
      } else {
        std::memcpy(os, w, n * E);
      }
    } else {
      const uint8_t* bs = b + i * E;
      for (size_t j = 0; j < n; ++j) {
        T tb = load<T>(bs + j * E);
        if constexpr (ROT) tb = rotl1(tb);
        T t;
        if constexpr (DELTA == DELTA_XOR) t = T(w[j] ^ tb);
        else if constexpr (DELTA == DELTA_OSUB) t = ordered(T(ordered(tb) + unzigzag(w[j])));
        else t = T(w[j] + tb);
        if constexpr (ROT) t = rotr1(t);
        store<T>(os + j * E, t);
      }
    }
  }
}

// In place: out holds the base and receives the result (no restrict: they alias).
template <typename T, int DELTA, bool ROT>
void apply_range(const uint8_t* const* pl, const uint8_t*, uint8_t* out, size_t i0, size_t i1) {
  constexpr size_t E = sizeof(T);
  alignas(64) T w[kBlock];
  for (size_t i = i0; i < i1; i += kBlock) {
    const size_t n = std::min(kBlock, i1 - i);
    gather<T>(pl, i, w, n);
    uint8_t* os = out + i * E;
    for (size_t j = 0; j < n; ++j) {
      T tb = load<T>(os + j * E);
      if constexpr (ROT) tb = rotl1(tb);
      T t;
      if constexpr (DELTA == DELTA_XOR) t = T(w[j] ^ tb);
      else if constexpr (DELTA == DELTA_OSUB) t = ordered(T(ordered(tb) + unzigzag(w[j])));
      else t = T(w[j] + tb);
      if constexpr (ROT) t = rotr1(t);
      store<T>(os + j * E, t);
    }
  }
}

using EncodeFn = void (*)(const uint8_t*, const uint8_t*, uint8_t*, size_t, size_t, size_t);
using DecodeFn = void (*)(const uint8_t* const*, const uint8_t*, uint8_t*, size_t, size_t);

template <bool ENC>
using RangeFn = std::conditional_t<ENC, EncodeFn, DecodeFn>;

template <bool ENC, typename T>
RangeFn<ENC> pick_t(int delta, bool rot) {
#define MG_PICK(D, R)                                \
  {                                                  \
    if constexpr (ENC) return &encode_range<T, D, R>; \
    else return &decode_range<T, D, R>;              \
  }
  if (delta == DELTA_NONE) {
    if (rot) MG_PICK(DELTA_NONE, true);
    MG_PICK(DELTA_NONE, false);
  }
  if (delta == DELTA_XOR) {
    if (rot) MG_PICK(DELTA_XOR, true);
    MG_PICK(DELTA_XOR, false);
  }
  if (delta == DELTA_OSUB) {
    if (rot) MG_PICK(DELTA_OSUB, true);
    MG_PICK(DELTA_OSUB, false);
  }
  if (rot) MG_PICK(DELTA_SUB, true);
  MG_PICK(DELTA_SUB, false);
#undef MG_PICK
}

template <typename T>
DecodeFn pick_apply_t(int delta, bool rot) {
  if (delta == DELTA_XOR) return rot ? &apply_range<T, DELTA_XOR, true> : &apply_range<T, DELTA_XOR, false>;
  if (delta == DELTA_OSUB)
    return rot ? &apply_range<T, DELTA_OSUB, true> : &apply_range<T, DELTA_OSUB, false>;
  return rot ? &apply_range<T, DELTA_SUB, true> : &apply_range<T, DELTA_SUB, false>;
}

DecodeFn pick_apply(int elem_size, int delta, bool rot) {
  switch (elem_size) {
    case 1: return pick_apply_t<uint8_t>(delta, rot);
    case 2: return pick_apply_t<uint16_t>(delta, rot);
    case 4: return pick_apply_t<uint32_t>(delta, rot);
    default: return pick_apply_t<uint64_t>(delta, rot);
  }
}

template <bool ENC>
RangeFn<ENC> pick(int elem_size, int delta, bool rot) {
  switch (elem_size) {
    case 1: return pick_t<ENC, uint8_t>(delta, rot);
    case 2: return pick_t<ENC, uint16_t>(delta, rot);
    case 4: return pick_t<ENC, uint32_t>(delta, rot);
    default: return pick_t<ENC, uint64_t>(delta, rot);
  }
}

}  // namespace

void planes_encode(const uint8_t* data, const uint8_t* base, uint8_t* out, size_t m,
                   int elem_size, int delta, bool rotate, int nthreads) {
  if (m == 0) return;
  EncodeFn fn = pick<true>(elem_size, delta, rotate);
  parallel_for(m, nthreads, kBlock, [&](int, size_t b, size_t e) {
    if (b < e) fn(data, base, out, m, b, e);
  });
}

void planes_decode_split(const uint8_t* const* planes, const uint8_t* base, uint8_t* out,
                         size_t m, int elem_size, int delta, bool rotate, int nthreads) {
  if (m == 0) return;
  DecodeFn fn = pick<false>(elem_size, delta, rotate);
  parallel_for(m, nthreads, kBlock, [&](int, size_t b, size_t e) {
    if (b < e) fn(planes, base, out, b, e);
  });
}

void planes_apply_split(const uint8_t* const* planes, uint8_t* out, size_t m, int elem_size,
                        int delta, bool rotate, int nthreads) {
  if (m == 0) return;
  DecodeFn fn = pick_apply(elem_size, delta, rotate);
  parallel_for(m, nthreads, kBlock, [&](int, size_t b, size_t e) {
    if (b < e) fn(planes, nullptr, out, b, e);
  });
}

void planes_decode(const uint8_t* planes, const uint8_t* base, uint8_t* out, size_t m,
                   int elem_size, int delta, bool rotate, int nthreads) {
  const uint8_t* split[8];
  for (int p = 0; p < elem_size; ++p) split[p] = planes + size_t(p) * m;
  planes_decode_split(split, base, out, m, elem_size, delta, rotate, nthreads);
}

namespace {
template <typename T>
void zero_mask_t(const uint8_t* data, const uint8_t* pred, uint8_t* out, uint8_t* mask, size_t m) {
  for (size_t b = 0; b < (m + 7) / 8; ++b) {
    uint8_t bits = 0;
    const size_t i0 = b * 8, i1 = std::min(m, i0 + 8);
    for (size_t i = i0; i < i1; ++i) {
      const bool zero = load<T>(data + i * sizeof(T)) == 0;
      bits |= uint8_t(zero) << (i - i0);
      store<T>(out + i * sizeof(T), zero ? T(0) : load<T>(pred + i * sizeof(T)));
    }
    mask[b] = bits;
  }
}
}  // namespace

void zero_mask(const uint8_t* data, const uint8_t* pred, uint8_t* out, uint8_t* mask, size_t m,
               int elem_size) {
  switch (elem_size) {
    case 1: zero_mask_t<uint8_t>(data, pred, out, mask, m); break;
    case 2: zero_mask_t<uint16_t>(data, pred, out, mask, m); break;
    case 4: zero_mask_t<uint32_t>(data, pred, out, mask, m); break;
    default: zero_mask_t<uint64_t>(data, pred, out, mask, m); break;
  }
}

}  // namespace modelgit
