// Low-bit dequantization (lowbit_dequantize of _core.pyi), bit for bit:
//   bits == 1: scale if code else -scale (sign bit flipped, NaN payloads kept)
//   bits >= 2: float(code) * scale + offset (float32 ops, no FMA)
// with scale and offset those of the element's group (i / group). Codes are packed LSB
// first (pack_bits). A thread decodes 8 elements: `bits` bytes of codes in, 32 bytes out.
#include "cuda/common.cuh"

namespace modelgit::cuda {
namespace {

__device__ __forceinline__ uint32_t ld_u32(const uint8_t* p, bool aligned4) {
  return aligned4 ? *reinterpret_cast<const uint32_t*>(p) : ld_bytes<uint32_t>(p);
}

template <int BITS>
__device__ __forceinline__ float dequant_one(uint32_t code, float scale, float offset) {
  if constexpr (BITS == 1) {
    return code ? scale : __uint_as_float(__float_as_uint(scale) ^ 0x80000000u);
  } else {
    return fadd_cpu(fmul_cpu(__uint2float_rn(code), scale), offset);
  }
}

template <int BITS>
__global__ void __launch_bounds__(kBlockThreads)
    lowbit_dequantize_kernel(const uint8_t* __restrict__ packed, const uint8_t* __restrict__ scales,
                             const uint8_t* __restrict__ offsets, uint8_t* __restrict__ out, uint64_t n,
                             uint64_t group, int packed_align, bool sc_aligned4, int out_align) {
  constexpr uint32_t mask = (1u << BITS) - 1u;
  const uint64_t u = uint64_t(blockIdx.x) * kBlockThreads + threadIdx.x;
  const uint64_t i0 = u * 8;
  if (i0 >= n) return;

  // group of the first element; the 8 elements advance through the groups in order
  uint64_t g, r;
  if (((i0 | group) >> 32) == 0) {
    g = uint32_t(i0) / uint32_t(group);
    r = uint32_t(i0) - uint32_t(g) * uint32_t(group);
  } else {
    g = i0 / group;
    r = i0 - g * group;
  }
  float scale = __uint_as_float(ld_u32(scales + g * 4, sc_aligned4));
  float offset = BITS == 1 ? 0.0f : __uint_as_float(ld_u32(offsets + g * 4, sc_aligned4));

  if (i0 + 8 <= n) {
    // the 8 codes: `BITS` bytes at packed + u*BITS
    unsigned long long pk;
    const uint8_t* pp = packed + u * BITS;
    if constexpr (BITS == 8) {
      uint32_t w[2];
      ldv<8>(pp, packed_align, w);
      pk = (unsigned long long)w[0] | ((unsigned long long)w[1] << 32);
    } else if constexpr (BITS == 4) {
      uint32_t w[1];
      ldv<4>(pp, packed_align, w);
      pk = w[0];
    } else if constexpr (BITS == 2) {
      pk = packed_align >= 2 ? *reinterpret_cast<const uint16_t*>(pp) : ld_bytes<uint16_t>(pp);
    } else {
      pk = *pp;
    }
    uint32_t o[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      if (j > 0 && ++r == group) {
        r = 0;
        ++g;
        scale = __uint_as_float(ld_u32(scales + g * 4, sc_aligned4));
        if (BITS != 1) offset = __uint_as_float(ld_u32(offsets + g * 4, sc_aligned4));
      }
      const uint32_t code = uint32_t(pk >> (j * BITS)) & mask;
      o[j] = __float_as_uint(dequant_one<BITS>(code, scale, offset));
    }
    stv<32>(out + i0 * 4, out_align, o);
    return;
  }
  for (uint64_t i = i0; i < n; ++i) {
    if (i > i0 && ++r == group) {
      r = 0;
      ++g;
      scale = __uint_as_float(ld_u32(scales + g * 4, sc_aligned4));
      if (BITS != 1) offset = __uint_as_float(ld_u32(offsets + g * 4, sc_aligned4));
    }
    const uint64_t bit = i * BITS;
    const uint32_t code = uint32_t(packed[bit >> 3] >> (bit & 7)) & mask;
    st_bytes<uint32_t>(out + i * 4, __float_as_uint(dequant_one<BITS>(code, scale, offset)));
  }
}

template <int BITS>
void launch(const uint8_t* packed, const uint8_t* scales, const uint8_t* offsets, uint8_t* out, uint64_t n,
            uint64_t group, cudaStream_t s) {
  const bool sc4 = (reinterpret_cast<uintptr_t>(scales) & 3) == 0 &&
                   (BITS == 1 || (reinterpret_cast<uintptr_t>(offsets) & 3) == 0);
  lowbit_dequantize_kernel<BITS><<<grid_for((n + 7) / 8), kBlockThreads, 0, s>>>(
      packed, scales, offsets, out, n, group, align_of(reinterpret_cast<uintptr_t>(packed)), sc4,
      align_of(reinterpret_cast<uintptr_t>(out)));
}

}  // namespace

Status lowbit_dequantize(uintptr_t packed, uintptr_t scales, uintptr_t offsets, uintptr_t out, int bits,
                         uint64_t group, uint64_t n, uintptr_t stream) {
  if (n == 0) return {};
  const PtrArg args[4] = {
      {packed, "packed", true}, {scales, "scales", true}, {offsets, "offsets", true}, {out, "out", true}};
  Status st = prepare_device(args);
  if (!st.ok()) return st;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  const auto* p = reinterpret_cast<const uint8_t*>(packed);
  const auto* sc = reinterpret_cast<const uint8_t*>(scales);
  const auto* of = reinterpret_cast<const uint8_t*>(offsets);
  auto* o = reinterpret_cast<uint8_t*>(out);
  switch (bits) {
    case 1: launch<1>(p, sc, of, o, n, group, s); break;
    case 2: launch<2>(p, sc, of, o, n, group, s); break;
    case 4: launch<4>(p, sc, of, o, n, group, s); break;
    default: launch<8>(p, sc, of, o, n, group, s); break;
  }
  return launch_status("lowbit_dequantize");
}

}  // namespace modelgit::cuda
