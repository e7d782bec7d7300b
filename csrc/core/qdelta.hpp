// Error-bounded quantized delta: every decoded element within eps of the original.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/common.hpp"

namespace modelgit {

struct QDeltaExceptions {
  std::vector<uint64_t> index;
  std::vector<uint8_t> values;  // raw words of x, elem_size bytes each
};

// x, base: n elements of dtype; codes: n int32. Returns the exceptions in ascending order.
// eps must be valid (finite, > 0, float32(2*eps) > 0 for the 32/16-bit types).
QDeltaExceptions qdelta_encode(const uint8_t* x, const uint8_t* base, uint8_t* codes, size_t n,
                               DType dt, double eps, int nthreads);

// Validates the exception list: "" if fine, else a message.
const char* qdelta_check_exceptions(const uint8_t* exc_index, size_t count, size_t n);

void qdelta_decode(const uint8_t* codes, const uint8_t* base, const uint8_t* exc_index,
                   const uint8_t* exc_values, size_t count, uint8_t* out, size_t n, DType dt,
                   double eps, int nthreads);

}  // namespace modelgit
