// Host-side interface between the pybind11 bindings (bindings/cuda/module.cpp, plain
// C++, no CUDA headers) and the launchers (cuda/*.cu). Everything here is host code;
// pointers are raw device addresses passed as integers, `stream` is a cudaStream_t as an
// integer (0 = the legacy default stream).
#pragma once

#include <cstdint>
#include <string>

#include "core/params.hpp"  // Delta, DType, the parameter checks

namespace modelgit::cuda {

enum class Err : int { Ok = 0, Value = 1, Runtime = 2 };

struct Status {
  Err kind = Err::Ok;
  std::string msg;
  bool ok() const { return kind == Err::Ok; }
};

inline Status value_error(std::string m) { return {Err::Value, std::move(m)}; }
inline Status runtime_error(std::string m) { return {Err::Runtime, std::move(m)}; }

// Byte planes (see _core.pyi planes_encode / planes_decode). Parameters are validated
// by the caller (bindings/cuda/module.cpp, with core/params.hpp); pointers are checked
// here (device memory, one device).
Status planes(bool encode, uintptr_t src, uintptr_t base, uintptr_t out, uint64_t nbytes,
              int elem_size, int delta, bool rotate, uintptr_t stream);

// Error-bounded delta decode. `step` is 2*eps in double (float64) and `stepf` is
// float32(2*eps) (the 32/16-bit types), both computed on the host like the CPU does.
Status qdelta_decode(uintptr_t codes, uintptr_t base, uintptr_t exc_index, uintptr_t exc_values,
                     uint64_t n_exc, uintptr_t out, uint64_t n, DType dtype, double step,
                     float stepf, uintptr_t stream);

// Low-bit dequantization (float32 output, n elements).
Status lowbit_dequantize(uintptr_t packed, uintptr_t scales, uintptr_t offsets, uintptr_t out,
                         int bits, uint64_t group, uint64_t n, uintptr_t stream);

// CUDA runtime version this module was built with, and (initialising CUDA) the number
// of devices; for diagnostics only.
int runtime_version_built();
Status device_count(int* count);

}  // namespace modelgit::cuda
