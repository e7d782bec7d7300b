// Float casts and the mean of float chunks, bit for bit as torch.Tensor.to() does them on
// the CPU (the "cast" and "mean" predictors of docs/FORMAT.md section 3.3, which defines
// every rule, NaN results included). Pure C++, no Python.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/params.hpp"  // DType

namespace modelgit {

// n elements of src (dtype s) to n elements of dst (dtype d). dst must not overlap src
// unless s and d have the same size and src == dst.
void cast(const uint8_t* src, DType s, uint8_t* dst, DType d, size_t n, int nthreads);

// The mean of k >= 1 chunks of n elements of dtype s: each element converted to float32,
// summed in order (float32 additions), divided by k (float32), converted to d.
void mean_cast(const uint8_t* const* srcs, int k, DType s, uint8_t* dst, DType d, size_t n,
               int nthreads);

}  // namespace modelgit
