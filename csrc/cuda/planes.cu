// Byte planes on the GPU: planes_encode / planes_decode of _core.pyi, bit for bit.
//
// Layout: m words of E bytes; plane p (0 = most significant byte) holds byte E-1-p of
// every (delta-coded, optionally rotated) word, at planes + p*m.
//
// Work split: a thread owns 4 consecutive words (a "unit"), so it reads / writes 4E
// contiguous bytes of the word array (one 8, 16 or 2x16-byte access) and exactly 4
// bytes of every plane. A warp therefore owns 128 contiguous bytes of every plane, which
// it reads / writes with one 4-byte access per lane: fully coalesced. A plane segment
// starts at planes + p*m + 128*warp, which is not 4-byte aligned when m is not a
// multiple of 4: the warp then reads the aligned words covering its segment and funnel-
// shifts each lane's word with its neighbour's (warp shuffle), and on encode writes the
// aligned words assembled the same way, only the two partial words at the ends of the
// segment byte by byte. The byte transposition between the 4 words and the E plane
// words is done in registers with byte permutes. Warps at the edges of the arrays (the
// last partial warp, or the first one when the planes pointer itself is not aligned)
// take a per-word scalar path.
#include <type_traits>
#include "cuda/common.cuh"

namespace modelgit::cuda {
namespace {

template <int E>
struct WordOf;
template <>
struct WordOf<1> {
  using T = uint8_t;
};
template <>
struct WordOf<2> {
  using T = uint16_t;
};
template <>
struct WordOf<4> {
  using T = uint32_t;
};
template <>
struct WordOf<8> {
  using T = unsigned long long;
};

// ---- scalar word operations (slow path) ------------------------------------------------------
template <typename T>
__device__ __forceinline__ T rotl1(T x) {
  return T(T(x << 1) | T(x >> (sizeof(T) * 8 - 1)));
}
template <typename T>
__device__ __forceinline__ T rotr1(T x) {
  return T(T(x >> 1) | T(x << (sizeof(T) * 8 - 1)));
}

// OSUB (delta 3): zigzag of the difference of value-ordered patterns, as in csrc/core/planes.cpp.
template <typename T>
__device__ __forceinline__ T ordered(T x) {
  const T sign = T(T(1) << (sizeof(T) * 8 - 1));
  return (x & sign) ? T(x ^ T(sign - 1)) : x;
}
template <typename T>
__device__ __forceinline__ T zigzag(T d) {
  const T sign = T(T(1) << (sizeof(T) * 8 - 1));
  return T(T(d << 1) ^ ((d & sign) ? T(~T(0)) : T(0)));
}
template <typename T>
__device__ __forceinline__ T unzigzag(T z) {
  return T(T(z >> 1) ^ T(T(0) - T(z & 1)));
}

template <typename T>
__device__ __forceinline__ T fwd_word(T x, T b, int delta, bool rot) {
  T t = rot ? rotl1(x) : x;
  if (delta == DELTA_NONE) return t;
  T tb = rot ? rotl1(b) : b;
  if (delta == DELTA_OSUB) return zigzag(T(ordered(t) - ordered(tb)));
  return delta == DELTA_XOR ? T(t ^ tb) : T(t - tb);
}
template <typename T>
__device__ __forceinline__ T inv_word(T w, T b, int delta, bool rot) {
  T t = w;
  if (delta != DELTA_NONE) {
    T tb = rot ? rotl1(b) : b;
    if (delta == DELTA_OSUB) t = ordered(T(ordered(tb) + unzigzag(w)));
    else t = delta == DELTA_XOR ? T(w ^ tb) : T(w + tb);
  }
  return rot ? rotr1(t) : t;
}

// OSUB on the E-byte lanes of a packed uint32 (scalar per lane).
template <int E, bool FWD>
__device__ __forceinline__ uint32_t osub_lanes(uint32_t a, uint32_t b, bool rot) {
  if constexpr (E == 4) {
    return FWD ? fwd_word<uint32_t>(a, b, DELTA_OSUB, rot) : inv_word<uint32_t>(a, b, DELTA_OSUB, rot);
  } else {
    using L = typename std::conditional<E == 2, uint16_t, uint8_t>::type;
    uint32_t r = 0;
#pragma unroll
    for (int s = 0; s < 32; s += 8 * E) {
      const L x = L(a >> s), y = L(b >> s);
      const L v = FWD ? fwd_word<L>(x, y, DELTA_OSUB, rot) : inv_word<L>(x, y, DELTA_OSUB, rot);
      r |= uint32_t(v) << s;
    }
    return r;
  }
}

// ---- packed (4 words in E uint32) operations (fast path) -----------------------------------------
// d[] holds the 4 words in memory order (little-endian).
template <int E>
__device__ __forceinline__ uint32_t rotl_lanes(uint32_t x) {
  if constexpr (E == 1) return ((x << 1) & 0xFEFEFEFEu) | ((x >> 7) & 0x01010101u);
  else if constexpr (E == 2) return ((x << 1) & 0xFFFEFFFEu) | ((x >> 15) & 0x00010001u);
  else return __funnelshift_l(x, x, 1);
}
template <int E>
__device__ __forceinline__ uint32_t rotr_lanes(uint32_t x) {
  if constexpr (E == 1) return ((x >> 1) & 0x7F7F7F7Fu) | ((x << 7) & 0x80808080u);
  else if constexpr (E == 2) return ((x >> 1) & 0x7FFF7FFFu) | ((x << 15) & 0x80008000u);
  else return __funnelshift_r(x, x, 1);
}
template <int E>
__device__ __forceinline__ uint32_t sub_lanes(uint32_t a, uint32_t b) {
  if constexpr (E == 1) return __vsub4(a, b);
  else if constexpr (E == 2) return __vsub2(a, b);
  else return a - b;
}
template <int E>
__device__ __forceinline__ uint32_t add_lanes(uint32_t a, uint32_t b) {
  if constexpr (E == 1) return __vadd4(a, b);
  else if constexpr (E == 2) return __vadd2(a, b);
  else return a + b;
}

__device__ __forceinline__ unsigned long long join64(uint32_t lo, uint32_t hi) {
  return (unsigned long long)lo | ((unsigned long long)hi << 32);
}

// Encode side: x (data words) -> w, in place. `b` is read only when delta != NONE.
template <int E, int NW>
__device__ __forceinline__ void fwd_packed(uint32_t (&d)[NW], const uint32_t (&b)[NW], int delta, bool rot) {
  if constexpr (E == 8) {
#pragma unroll
    for (int k = 0; k < NW / 2; ++k) {
      unsigned long long x = join64(d[2 * k], d[2 * k + 1]);
      unsigned long long y = join64(b[2 * k], b[2 * k + 1]);
      x = fwd_word<unsigned long long>(x, y, delta, rot);
      d[2 * k] = uint32_t(x);
      d[2 * k + 1] = uint32_t(x >> 32);
    }
  } else {
#pragma unroll
    for (int k = 0; k < NW; ++k) {
      if (delta == DELTA_OSUB) {
        d[k] = osub_lanes<E, true>(d[k], b[k], rot);
        continue;
      }
      uint32_t t = rot ? rotl_lanes<E>(d[k]) : d[k];
      if (delta != DELTA_NONE) {
        const uint32_t tb = rot ? rotl_lanes<E>(b[k]) : b[k];
        t = delta == DELTA_XOR ? (t ^ tb) : sub_lanes<E>(t, tb);
      }
      d[k] = t;
    }
  }
}

// Decode side: w -> x, in place.
template <int E, int NW>
__device__ __forceinline__ void inv_packed(uint32_t (&d)[NW], const uint32_t (&b)[NW], int delta, bool rot) {
  if constexpr (E == 8) {
#pragma unroll
    for (int k = 0; k < NW / 2; ++k) {
      unsigned long long w = join64(d[2 * k], d[2 * k + 1]);
      unsigned long long y = join64(b[2 * k], b[2 * k + 1]);
      w = inv_word<unsigned long long>(w, y, delta, rot);
      d[2 * k] = uint32_t(w);
      d[2 * k + 1] = uint32_t(w >> 32);
    }
  } else {
#pragma unroll
    for (int k = 0; k < NW; ++k) {
      if (delta == DELTA_OSUB) {
        d[k] = osub_lanes<E, false>(d[k], b[k], rot);
        continue;
      }
      uint32_t t = d[k];
      if (delta != DELTA_NONE) {
        const uint32_t tb = rot ? rotl_lanes<E>(b[k]) : b[k];
        t = delta == DELTA_XOR ? (t ^ tb) : add_lanes<E>(t, tb);
      }
      d[k] = rot ? rotr_lanes<E>(t) : t;
    }
  }
}

// c_j.byte_i = a_i.byte_j (4x4 byte transpose).
__device__ __forceinline__ void transpose4(uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t& c0,
                                          uint32_t& c1, uint32_t& c2, uint32_t& c3) {
  const uint32_t x = __byte_perm(a0, a1, 0x5140);   // a0.0 a1.0 a0.1 a1.1
  const uint32_t y = __byte_perm(a2, a3, 0x5140);   // a2.0 a3.0 a2.1 a3.1
  const uint32_t x2 = __byte_perm(a0, a1, 0x7362);  // a0.2 a1.2 a0.3 a1.3
  const uint32_t y2 = __byte_perm(a2, a3, 0x7362);  // a2.2 a3.2 a2.3 a3.3
  c0 = __byte_perm(x, y, 0x5410);
  c1 = __byte_perm(x, y, 0x7632);
  c2 = __byte_perm(x2, y2, 0x5410);
  c3 = __byte_perm(x2, y2, 0x7632);
}

// Plane words b[p] (byte j = plane p's byte of word j) -> the 4 words in memory order.
template <int E>
__device__ __forceinline__ void planes_to_words(const uint32_t (&b)[E], uint32_t (&d)[E]) {
  if constexpr (E == 1) {
    d[0] = b[0];
  } else if constexpr (E == 2) {
    d[0] = __byte_perm(b[1], b[0], 0x5140);
    d[1] = __byte_perm(b[1], b[0], 0x7362);
  } else if constexpr (E == 4) {
    transpose4(b[3], b[2], b[1], b[0], d[0], d[1], d[2], d[3]);
  } else {
    transpose4(b[7], b[6], b[5], b[4], d[0], d[2], d[4], d[6]);
    transpose4(b[3], b[2], b[1], b[0], d[1], d[3], d[5], d[7]);
  }
}

// The 4 words in memory order -> plane words.
template <int E>
__device__ __forceinline__ void words_to_planes(const uint32_t (&d)[E], uint32_t (&b)[E]) {
  if constexpr (E == 1) {
    b[0] = d[0];
  } else if constexpr (E == 2) {
    b[1] = __byte_perm(d[0], d[1], 0x6420);
    b[0] = __byte_perm(d[0], d[1], 0x7531);
  } else if constexpr (E == 4) {
    transpose4(d[0], d[1], d[2], d[3], b[3], b[2], b[1], b[0]);
  } else {
    transpose4(d[0], d[2], d[4], d[6], b[7], b[6], b[5], b[4]);
    transpose4(d[1], d[3], d[5], d[7], b[3], b[2], b[1], b[0]);
  }
}

// ---- kernels -------------------------------------------------------------------------------------
template <int E>
__global__ void __launch_bounds__(kBlockThreads)
    planes_decode_kernel(const uint8_t* __restrict__ planes, const uint8_t* __restrict__ base,
                         uint8_t* __restrict__ out, uint64_t m, int delta, bool rot, int base_align,
                         int out_align) {
  using T = typename WordOf<E>::T;
  const uint64_t u = uint64_t(blockIdx.x) * kBlockThreads + threadIdx.x;
  const uint64_t i0 = u * 4;
  if (i0 >= m) return;  // only in the last, partial warp (never a fast one)
  const int lane = int(threadIdx.x & 31);
  const uint64_t seg0 = (u >> 5) * 128;  // first word of this warp

  bool fast = seg0 + 128 <= m;
  if (fast) {
    bool shifted = false;
#pragma unroll
    for (int p = 0; p < E; ++p) shifted |= ((reinterpret_cast<uintptr_t>(planes) + uint64_t(p) * m) & 3) != 0;
    // unaligned segments read one aligned word before and after them: keep it in bounds
    if (shifted)
      fast = seg0 + 132 <= m && (seg0 > 0 || (reinterpret_cast<uintptr_t>(planes) & 3) == 0);
  }

  if (fast) {  // warp-uniform
    uint32_t lo[E], ex[E];
#pragma unroll
    for (int p = 0; p < E; ++p) {
      const uint8_t* seg = planes + uint64_t(p) * m + seg0;
      const uint32_t sh = uint32_t(reinterpret_cast<uintptr_t>(seg) & 3);
      const uint32_t* a = reinterpret_cast<const uint32_t*>(seg - sh);
      lo[p] = a[lane];
      ex[p] = (lane == 31 && sh != 0) ? a[32] : 0u;
    }
    uint32_t bw[E] = {};
    if (delta != DELTA_NONE) ldv<4 * E>(base + i0 * E, base_align, bw);
    uint32_t b[E];
#pragma unroll
    for (int p = 0; p < E; ++p) {
      const uint32_t sh = uint32_t((reinterpret_cast<uintptr_t>(planes) + uint64_t(p) * m) & 3);
      uint32_t hi = __shfl_down_sync(kFullMask, lo[p], 1);
      if (lane == 31) hi = ex[p];
      b[p] = __funnelshift_r(lo[p], hi, 8 * sh);
    }
    uint32_t d[E];
    planes_to_words<E>(b, d);
    inv_packed<E, E>(d, bw, delta, rot);
    stv<4 * E>(out + i0 * E, out_align, d);
    return;
  }

  const uint64_t iend = i0 + 4 < m ? i0 + 4 : m;
  for (uint64_t i = i0; i < iend; ++i) {
    T w = 0;
#pragma unroll
    for (int p = 0; p < E; ++p) w = T(w | (T(planes[uint64_t(p) * m + i]) << (8 * (E - 1 - p))));
    const T b = delta != DELTA_NONE ? ld_bytes<T>(base + i * E) : T(0);
    st_bytes<T>(out + i * E, inv_word<T>(w, b, delta, rot));
  }
}

template <int E>
__global__ void __launch_bounds__(kBlockThreads)
    planes_encode_kernel(const uint8_t* __restrict__ data, const uint8_t* __restrict__ base,
                         uint8_t* __restrict__ planes, uint64_t m, int delta, bool rot, int data_align,
                         int base_align) {
  using T = typename WordOf<E>::T;
  const uint64_t u = uint64_t(blockIdx.x) * kBlockThreads + threadIdx.x;
  const uint64_t i0 = u * 4;
  if (i0 >= m) return;
  const int lane = int(threadIdx.x & 31);
  const uint64_t seg0 = (u >> 5) * 128;

  if (seg0 + 128 <= m) {  // full warp: warp-uniform
    uint32_t d[E], bw[E] = {};
    ldv<4 * E>(data + i0 * E, data_align, d);
    if (delta != DELTA_NONE) ldv<4 * E>(base + i0 * E, base_align, bw);
    fwd_packed<E, E>(d, bw, delta, rot);
    uint32_t b[E];
    words_to_planes<E>(d, b);
#pragma unroll
    for (int p = 0; p < E; ++p) {
      uint8_t* seg = planes + uint64_t(p) * m + seg0;
      const uint32_t sh = uint32_t(reinterpret_cast<uintptr_t>(seg) & 3);
      if (sh == 0) {
        reinterpret_cast<uint32_t*>(seg)[lane] = b[p];
      } else {
        const uint32_t prev = __shfl_up_sync(kFullMask, b[p], 1);
        uint32_t* a = reinterpret_cast<uint32_t*>(seg - sh);
        if (lane > 0) {
          a[lane] = __funnelshift_l(prev, b[p], 8 * sh);
        } else {
          for (uint32_t j = 0; j < 4 - sh; ++j) seg[j] = uint8_t(b[p] >> (8 * j));
        }
        if (lane == 31) {
          for (uint32_t j = 4 - sh; j < 4; ++j) seg[124 + j] = uint8_t(b[p] >> (8 * j));
        }
      }
    }
    return;
  }

  const uint64_t iend = i0 + 4 < m ? i0 + 4 : m;
  for (uint64_t i = i0; i < iend; ++i) {
    const T x = ld_bytes<T>(data + i * E);
    const T b = delta != DELTA_NONE ? ld_bytes<T>(base + i * E) : T(0);
    const T w = fwd_word<T>(x, b, delta, rot);
#pragma unroll
    for (int p = 0; p < E; ++p) planes[uint64_t(p) * m + i] = uint8_t(w >> (8 * (E - 1 - p)));
  }
}

// elem_size 1 with every pointer 16-byte aligned: the planes are the words; 16 bytes a thread.
template <bool ENC>
__global__ void __launch_bounds__(kBlockThreads)
    bytes_kernel(const uint8_t* __restrict__ src, const uint8_t* __restrict__ base, uint8_t* __restrict__ out,
                 uint64_t m, int delta, bool rot) {
  const uint64_t u = uint64_t(blockIdx.x) * kBlockThreads + threadIdx.x;
  const uint64_t i0 = u * 16;
  if (i0 >= m) return;
  if (i0 + 16 <= m) {
    uint32_t d[4], b[4] = {};
    ldv<16>(src + i0, 16, d);
    if (delta != DELTA_NONE) ldv<16>(base + i0, 16, b);
    if (ENC)
      fwd_packed<1, 4>(d, b, delta, rot);
    else
      inv_packed<1, 4>(d, b, delta, rot);
    stv<16>(out + i0, 16, d);
    return;
  }
  for (uint64_t i = i0; i < m; ++i) {
    const uint8_t x = src[i];
    const uint8_t b = delta != DELTA_NONE ? base[i] : uint8_t(0);
    out[i] = ENC ? fwd_word<uint8_t>(x, b, delta, rot) : inv_word<uint8_t>(x, b, delta, rot);
  }
}

template <int E>
void launch_planes(bool encode, const uint8_t* src, const uint8_t* base, uint8_t* out, uint64_t m, int delta,
                   bool rot, cudaStream_t stream) {
  const unsigned grid = grid_for((m + 3) / 4);
  const int base_align = align_of(reinterpret_cast<uintptr_t>(base));
  if (encode)
    planes_encode_kernel<E><<<grid, kBlockThreads, 0, stream>>>(
        src, base, out, m, delta, rot, align_of(reinterpret_cast<uintptr_t>(src)), base_align);
  else
    planes_decode_kernel<E><<<grid, kBlockThreads, 0, stream>>>(
        src, base, out, m, delta, rot, base_align, align_of(reinterpret_cast<uintptr_t>(out)));
}

}  // namespace

Status planes(bool encode, uintptr_t src, uintptr_t base, uintptr_t out, uint64_t nbytes, int elem_size,
              int delta, bool rotate, uintptr_t stream) {
  if (nbytes == 0) return {};
  const PtrArg args[3] = {{src, encode ? "data" : "planes", true},
                          {base, "base", delta != DELTA_NONE},
                          {out, "out", true}};
  Status st = prepare_device(args);
  if (!st.ok()) return st;
  const uint64_t m = nbytes / uint64_t(elem_size);
  const auto* s = reinterpret_cast<const uint8_t*>(src);
  const auto* b = delta != DELTA_NONE ? reinterpret_cast<const uint8_t*>(base) : nullptr;
  auto* o = reinterpret_cast<uint8_t*>(out);
  auto strm = reinterpret_cast<cudaStream_t>(stream);
  switch (elem_size) {
    case 1:
      if (((src | out | (b ? base : 0)) & 15) == 0) {
        const unsigned grid = grid_for((m + 15) / 16);
        if (encode)
          bytes_kernel<true><<<grid, kBlockThreads, 0, strm>>>(s, b, o, m, delta, rotate);
        else
          bytes_kernel<false><<<grid, kBlockThreads, 0, strm>>>(s, b, o, m, delta, rotate);
      } else {
        launch_planes<1>(encode, s, b, o, m, delta, rotate, strm);
      }
      break;
    case 2: launch_planes<2>(encode, s, b, o, m, delta, rotate, strm); break;
    case 4: launch_planes<4>(encode, s, b, o, m, delta, rotate, strm); break;
    default: launch_planes<8>(encode, s, b, o, m, delta, rotate, strm); break;
  }
  return launch_status(encode ? "planes_encode" : "planes_decode");
}

}  // namespace modelgit::cuda
