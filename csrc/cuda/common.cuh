// Device helpers of modelgit._cuda: vector loads/stores of any alignment, the float
// conversions and the IEEE operations of the CPU core reproduced bit for bit, and the
// host-side pointer checks shared by the launchers.
//
// Float arithmetic: __fadd_rn / __fmul_rn / __dadd_rn / __dmul_rn (never contracted into
// an FMA; the module is also compiled with -fmad=false). When a result is NaN, the GPU
// returns a canonical NaN, while the CPU core (x86-64 SSE/AVX, compiled with
// -ffp-contract=off) returns the first NaN operand made quiet, or the "default NaN"
// (sign set, quiet bit set, zero payload) for an invalid operation on non-NaN operands
// (inf - inf, 0 * inf). The *_x86 helpers below reproduce that, so that NaN payloads
// match too.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "cuda/api.cuh"

namespace modelgit::cuda {

constexpr unsigned kFullMask = 0xFFFFFFFFu;
constexpr int kBlockThreads = 256;

// ---- alignment ------------------------------------------------------------------------
// Largest power of two (at most 16) dividing the address; 16 for a null pointer.
inline int align_of(uintptr_t p) {
  if (p == 0) return 16;
  uintptr_t low = p & (~p + 1);
  return low >= 16 ? 16 : int(low);
}

// ---- vector loads / stores --------------------------------------------------------------
// N bytes (a multiple of 4, at most 32) at p into d[N/4] (little-endian words), with the
// widest accesses that `align` (the alignment of p, a power of two, capped at 16) allows.
// Callers only pass addresses whose offset from an `align`-aligned base is a multiple of
// N, so `align` stays valid for every thread.
template <int N>
__device__ __forceinline__ void ldv(const uint8_t* __restrict__ p, int align, uint32_t (&d)[N / 4]) {
  static_assert(N % 4 == 0 && N <= 32, "ldv: N must be a multiple of 4, at most 32");
  if constexpr (N % 16 == 0) {
    if (align >= 16) {
#pragma unroll
      for (int k = 0; k < N / 16; ++k) {
        const uint4 v = reinterpret_cast<const uint4*>(p)[k];
        d[4 * k] = v.x;
        d[4 * k + 1] = v.y;
        d[4 * k + 2] = v.z;
        d[4 * k + 3] = v.w;
      }
      return;
    }
  }
  if constexpr (N % 8 == 0) {
    if (align >= 8) {
#pragma unroll
      for (int k = 0; k < N / 8; ++k) {
        const uint2 v = reinterpret_cast<const uint2*>(p)[k];
        d[2 * k] = v.x;
        d[2 * k + 1] = v.y;
      }
      return;
    }
  }
  if (align >= 4) {
#pragma unroll
    for (int k = 0; k < N / 4; ++k) d[k] = reinterpret_cast<const uint32_t*>(p)[k];
    return;
  }
  if (align >= 2) {
#pragma unroll
    for (int k = 0; k < N / 4; ++k) {
      const uint16_t* h = reinterpret_cast<const uint16_t*>(p) + 2 * k;
      d[k] = uint32_t(h[0]) | (uint32_t(h[1]) << 16);
    }
    return;
  }
#pragma unroll
  for (int k = 0; k < N / 4; ++k) {
    const uint8_t* b = p + 4 * k;
    d[k] = uint32_t(b[0]) | (uint32_t(b[1]) << 8) | (uint32_t(b[2]) << 16) | (uint32_t(b[3]) << 24);
  }
}

template <int N>
__device__ __forceinline__ void stv(uint8_t* __restrict__ p, int align, const uint32_t (&d)[N / 4]) {
  static_assert(N % 4 == 0 && N <= 32, "stv: N must be a multiple of 4, at most 32");
  if constexpr (N % 16 == 0) {
    if (align >= 16) {
#pragma unroll
      for (int k = 0; k < N / 16; ++k)
        reinterpret_cast<uint4*>(p)[k] = make_uint4(d[4 * k], d[4 * k + 1], d[4 * k + 2], d[4 * k + 3]);
      return;
    }
  }
  if constexpr (N % 8 == 0) {
    if (align >= 8) {
#pragma unroll
      for (int k = 0; k < N / 8; ++k) reinterpret_cast<uint2*>(p)[k] = make_uint2(d[2 * k], d[2 * k + 1]);
      return;
    }
  }
  if (align >= 4) {
#pragma unroll
    for (int k = 0; k < N / 4; ++k) reinterpret_cast<uint32_t*>(p)[k] = d[k];
    return;
  }
  if (align >= 2) {
#pragma unroll
    for (int k = 0; k < N / 4; ++k) {
      uint16_t* h = reinterpret_cast<uint16_t*>(p) + 2 * k;
      h[0] = uint16_t(d[k]);
      h[1] = uint16_t(d[k] >> 16);
    }
    return;
  }
#pragma unroll
  for (int k = 0; k < N / 4; ++k) {
    uint8_t* b = p + 4 * k;
    b[0] = uint8_t(d[k]);
    b[1] = uint8_t(d[k] >> 8);
    b[2] = uint8_t(d[k] >> 16);
    b[3] = uint8_t(d[k] >> 24);
  }
}

// Little-endian word of S bytes at any address, byte by byte (tails, slow paths).
template <typename T>
__device__ __forceinline__ T ld_bytes(const uint8_t* p) {
  T v = 0;
#pragma unroll
  for (int k = 0; k < int(sizeof(T)); ++k) v = T(v | (T(p[k]) << (8 * k)));
  return v;
}
template <typename T>
__device__ __forceinline__ void st_bytes(uint8_t* p, T v) {
#pragma unroll
  for (int k = 0; k < int(sizeof(T)); ++k) p[k] = uint8_t(v >> (8 * k));
}

// ---- IEEE operations with the CPU's NaN results ---------------------------------------------
static __device__ __noinline__ float nan_result_f32(float a, float b) {
  const uint32_t ua = __float_as_uint(a), ub = __float_as_uint(b);
  if ((ua & 0x7FFFFFFFu) > 0x7F800000u) return __uint_as_float(ua | 0x00400000u);
  if ((ub & 0x7FFFFFFFu) > 0x7F800000u) return __uint_as_float(ub | 0x00400000u);
  return __uint_as_float(0xFFC00000u);
}
static __device__ __noinline__ double nan_result_f64(double a, double b) {
  const unsigned long long ua = __double_as_longlong(a), ub = __double_as_longlong(b);
  if ((ua & 0x7FFFFFFFFFFFFFFFull) > 0x7FF0000000000000ull)
    return __longlong_as_double((long long)(ua | 0x0008000000000000ull));
  if ((ub & 0x7FFFFFFFFFFFFFFFull) > 0x7FF0000000000000ull)
    return __longlong_as_double((long long)(ub | 0x0008000000000000ull));
  return __longlong_as_double((long long)0xFFF8000000000000ull);
}

__device__ __forceinline__ bool is_nan_f32(float r) {
  return (__float_as_uint(r) & 0x7FFFFFFFu) > 0x7F800000u;
}
__device__ __forceinline__ bool is_nan_f64(double r) {
  return ((unsigned long long)__double_as_longlong(r) & 0x7FFFFFFFFFFFFFFFull) > 0x7FF0000000000000ull;
}

__device__ __forceinline__ float fadd_cpu(float a, float b) {
  float r = __fadd_rn(a, b);
  if (is_nan_f32(r)) r = nan_result_f32(a, b);
  return r;
}
__device__ __forceinline__ float fmul_cpu(float a, float b) {
  float r = __fmul_rn(a, b);
  if (is_nan_f32(r)) r = nan_result_f32(a, b);
  return r;
}
__device__ __forceinline__ double dadd_cpu(double a, double b) {
  double r = __dadd_rn(a, b);
  if (is_nan_f64(r)) r = nan_result_f64(a, b);
  return r;
}
__device__ __forceinline__ double dmul_cpu(double a, double b) {
  double r = __dmul_rn(a, b);
  if (is_nan_f64(r)) r = nan_result_f64(a, b);
  return r;
}

// ---- float16 / bfloat16 conversions (the CPU core's, csrc/core/common.hpp, by hand) --------
__device__ __forceinline__ float f16_to_f32(uint32_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t man = h & 0x3FFu;
  uint32_t u;
  if (exp == 0x1F) {
    u = sign | 0x7F800000u | (man << 13);
  } else if (exp != 0) {
    u = sign | ((exp + 112u) << 23) | (man << 13);
  } else if (man == 0) {
    u = sign;
  } else {
    // subnormal: value = man * 2^-24; normalise (man < 0x400, so 1..10 shifts)
    const int lz = __clz(man) - 21;  // shifts bringing bit 10 up: man << lz has bit 10 set
    man <<= lz;
    const int e = lz - 1;
    u = sign | (uint32_t(112 - e) << 23) | ((man & 0x3FFu) << 13);
  }
  return __uint_as_float(u);
}

__device__ __forceinline__ uint32_t f32_to_f16(float f) {
  const uint32_t u = __float_as_uint(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a >= 0x7F800000u) {
    if (a == 0x7F800000u) return sign | 0x7C00u;
    uint32_t r = 0x7C00u | ((a & 0x7FFFFFu) >> 13);
    if (r == 0x7C00u) r = 0x7C01u;
    return sign | r;
  }
  if (a >= 0x477FF000u) return sign | 0x7C00u;  // >= 65520 rounds to inf
  if (a >= 0x38800000u) {                        // normal float16 range
    uint32_t r = a - (112u << 23);
    r = (r + 0xFFFu + ((r >> 13) & 1u)) >> 13;
    return sign | r;
  }
  const uint32_t e = a >> 23;
  if (e < 102) return sign;  // below half the smallest subnormal: 0
  const uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = 126u - e;  // 14..24
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (q & 1u))) ++q;
  return sign | q;
}

__device__ __forceinline__ float bf16_to_f32(uint32_t h) { return __uint_as_float(h << 16); }

__device__ __forceinline__ uint32_t f32_to_bf16(float f) {
  const uint32_t u = __float_as_uint(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return ((u >> 16) | 0x40u) & 0xFFFFu;
  return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}

// ---- host: pointer checks and errors ----------------------------------------------------------
inline Status cuda_status(cudaError_t e, const char* what) {
  return runtime_error(std::string(what) + ": CUDA error " + cudaGetErrorName(e) + ": " +
                       cudaGetErrorString(e));
}

// Checks that every non-null pointer is device (or managed) memory of one device, and
// makes that device current for this module's runtime. `required` pointers may not be null.
struct PtrArg {
  uintptr_t ptr;
  const char* name;
  bool required;
};

template <size_t K>
inline Status prepare_device(const PtrArg (&args)[K]) {
  int device = -1;
  for (const PtrArg& a : args) {
    if (a.ptr == 0) {
      if (a.required) return value_error(std::string(a.name) + ": null device pointer");
      continue;
    }
    cudaPointerAttributes attr{};
    cudaError_t e = cudaPointerGetAttributes(&attr, reinterpret_cast<const void*>(a.ptr));
    if (e == cudaErrorInvalidValue) {
      (void)cudaGetLastError();
      return value_error(std::string(a.name) + ": not a CUDA device pointer");
    }
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      return cuda_status(e, a.name);
    }
    if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged) {
      return value_error(std::string(a.name) +
                         ": not CUDA device memory (host or unregistered pointer); pass a CUDA "
                         "tensor's data_ptr()");
    }
    if (device < 0) {
      device = attr.device;
    } else if (attr.device != device) {
      return value_error(std::string(a.name) + ": on CUDA device " + std::to_string(attr.device) +
                         " but another buffer is on device " + std::to_string(device));
    }
  }
  if (device >= 0) {
    int cur = -1;
    cudaError_t e = cudaGetDevice(&cur);
    if (e != cudaSuccess) return cuda_status(e, "cudaGetDevice");
    if (cur != device) {
      e = cudaSetDevice(device);
      if (e != cudaSuccess) return cuda_status(e, "cudaSetDevice");
    }
  }
  return {};
}

inline Status launch_status(const char* kernel) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return cuda_status(e, kernel);
  return {};
}

inline unsigned grid_for(uint64_t threads) {
  return unsigned((threads + kBlockThreads - 1) / kBlockThreads);
}

}  // namespace modelgit::cuda
