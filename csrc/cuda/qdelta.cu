// Error-bounded quantized delta, decode side (qdelta_decode of _core.pyi), bit for bit:
//   float64:              dec = base + double(q) * step                     (double ops)
//   float32/16/bfloat16:  dec = T(base_f + float(q) * stepf)                (float32 ops)
// then every exception index i gets the exact stored word. A thread decodes 4 elements
// (16 bytes of codes, 4*E bytes of base and output); a second kernel, ordered after the
// first on the same stream, scatters the exceptions (indices >= n are ignored here: the
// Python wrapper validates them).
#include "cuda/common.cuh"

namespace modelgit::cuda {
namespace {

template <DType D>
struct QTraits;
template <>
struct QTraits<DType::F64> {
  static constexpr int E = 8;
  using T = unsigned long long;
};
template <>
struct QTraits<DType::F32> {
  static constexpr int E = 4;
  using T = uint32_t;
};
template <>
struct QTraits<DType::F16> {
  static constexpr int E = 2;
  using T = uint16_t;
};
template <>
struct QTraits<DType::BF16> {
  static constexpr int E = 2;
  using T = uint16_t;
};

template <DType D>
__device__ __forceinline__ typename QTraits<D>::T decode_one(typename QTraits<D>::T b, int32_t q, double step,
                                                             float stepf) {
  if constexpr (D == DType::F64) {
    // sum operands in the order the CPU build evaluates them (prod, base): it only
    // matters when both are NaN (base NaN and 0 * inf), where x86 returns the first.
    const double r = dadd_cpu(dmul_cpu(__int2double_rn(q), step), __longlong_as_double((long long)b));
    return (unsigned long long)__double_as_longlong(r);
  } else {
    float bf;
    if constexpr (D == DType::F32) bf = __uint_as_float(b);
    else if constexpr (D == DType::F16) bf = f16_to_f32(b);
    else bf = bf16_to_f32(b);
    const float r = fadd_cpu(fmul_cpu(__int2float_rn(q), stepf), bf);
    if constexpr (D == DType::F32) return __float_as_uint(r);
    else if constexpr (D == DType::F16) return uint16_t(f32_to_f16(r));
    else return uint16_t(f32_to_bf16(r));
  }
}

template <DType D>
__global__ void __launch_bounds__(kBlockThreads)
    qdelta_decode_kernel(const uint8_t* __restrict__ codes, const uint8_t* __restrict__ base,
                         uint8_t* __restrict__ out, uint64_t n, double step, float stepf, int codes_align,
                         int base_align, int out_align) {
  constexpr int E = QTraits<D>::E;
  using T = typename QTraits<D>::T;
  const uint64_t u = uint64_t(blockIdx.x) * kBlockThreads + threadIdx.x;
  const uint64_t i0 = u * 4;
  if (i0 >= n) return;
  if (i0 + 4 <= n) {
    uint32_t c[4], bw[E], o[E];
    ldv<16>(codes + i0 * 4, codes_align, c);
    ldv<4 * E>(base + i0 * E, base_align, bw);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if constexpr (E == 8) {
        const T b = (T)bw[2 * j] | ((T)bw[2 * j + 1] << 32);
        const T r = decode_one<D>(b, int32_t(c[j]), step, stepf);
        o[2 * j] = uint32_t(r);
        o[2 * j + 1] = uint32_t(r >> 32);
      } else if constexpr (E == 4) {
        o[j] = decode_one<D>(bw[j], int32_t(c[j]), step, stepf);
      } else {
        const T b = T(bw[j >> 1] >> (16 * (j & 1)));
        const uint32_t r = decode_one<D>(b, int32_t(c[j]), step, stepf);
        if (j & 1)
          o[j >> 1] |= r << 16;
        else
          o[j >> 1] = r;
      }
    }
    stv<4 * E>(out + i0 * E, out_align, o);
    return;
  }
  for (uint64_t i = i0; i < n; ++i) {
    const int32_t q = int32_t(ld_bytes<uint32_t>(codes + i * 4));
    const T b = ld_bytes<T>(base + i * E);
    st_bytes<T>(out + i * E, decode_one<D>(b, q, step, stepf));
  }
}

__global__ void __launch_bounds__(kBlockThreads)
    qdelta_exceptions_kernel(const uint8_t* __restrict__ exc_index, const uint8_t* __restrict__ exc_values,
                             uint8_t* __restrict__ out, uint64_t n_exc, uint64_t n, int elem_size) {
  const uint64_t j = uint64_t(blockIdx.x) * kBlockThreads + threadIdx.x;
  if (j >= n_exc) return;
  const unsigned long long i = ld_bytes<unsigned long long>(exc_index + j * 8);
  if (i >= n) return;
  const uint8_t* src = exc_values + j * uint64_t(elem_size);
  uint8_t* dst = out + i * uint64_t(elem_size);
  for (int k = 0; k < elem_size; ++k) dst[k] = src[k];
}

template <DType D>
void launch(const uint8_t* codes, const uint8_t* base, uint8_t* out, uint64_t n, double step, float stepf,
            cudaStream_t s) {
  qdelta_decode_kernel<D><<<grid_for((n + 3) / 4), kBlockThreads, 0, s>>>(
      codes, base, out, n, step, stepf, align_of(reinterpret_cast<uintptr_t>(codes)),
      align_of(reinterpret_cast<uintptr_t>(base)), align_of(reinterpret_cast<uintptr_t>(out)));
}

}  // namespace

Status qdelta_decode(uintptr_t codes, uintptr_t base, uintptr_t exc_index, uintptr_t exc_values, uint64_t n_exc,
                     uintptr_t out, uint64_t n, DType dtype, double step, float stepf, uintptr_t stream) {
  if (n == 0) return {};
  const PtrArg args[5] = {{codes, "codes", true},
                          {base, "base", true},
                          {exc_index, "exc_index", n_exc > 0},
                          {exc_values, "exc_values", n_exc > 0},
                          {out, "out", true}};
  Status st = prepare_device(args);
  if (!st.ok()) return st;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  const auto* c = reinterpret_cast<const uint8_t*>(codes);
  const auto* b = reinterpret_cast<const uint8_t*>(base);
  auto* o = reinterpret_cast<uint8_t*>(out);
  int es = 2;
  switch (dtype) {
    case DType::F64: launch<DType::F64>(c, b, o, n, step, stepf, s); es = 8; break;
    case DType::F32: launch<DType::F32>(c, b, o, n, step, stepf, s); es = 4; break;
    case DType::F16: launch<DType::F16>(c, b, o, n, step, stepf, s); break;
    default: launch<DType::BF16>(c, b, o, n, step, stepf, s); break;
  }
  st = launch_status("qdelta_decode");
  if (!st.ok() || n_exc == 0) return st;
  qdelta_exceptions_kernel<<<grid_for(n_exc), kBlockThreads, 0, s>>>(
      reinterpret_cast<const uint8_t*>(exc_index), reinterpret_cast<const uint8_t*>(exc_values), o, n_exc, n,
      es);
  return launch_status("qdelta_decode (exceptions)");
}

}  // namespace modelgit::cuda
