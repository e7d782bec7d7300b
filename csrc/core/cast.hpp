// Float casts, the mean and linear combinations of float chunks, bit for bit as torch.Tensor.to() does them on
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

// How linear_cast combines its inputs (the "linear" predictors of FORMAT.md 3.3).
enum class Combine : int {
  Exact = 0,     // sum of c_j * x_j in float64, in order, rounded once to d
  Seq = 1,       // torch-style: a = R(c_0 x_0); a = R(a + R(c_j x_j)), every step in d
  Anchored = 2,  // task arithmetic: a = x_0; a = R(a + R(c_j R(x_j - x_0))) for j >= 1
};

// A linear combination of k >= 1 chunks of n elements of dtype s, written as dtype d
// (Seq and Anchored need s == d). Float32, float16 and bfloat16 steps compute in float32
// with c_j rounded to float32, then round to d (R); float64 computes in float64. A NaN
// result is the canonical quiet NaN (float32 0x7FC00000, as cast to d).
void linear_cast(const uint8_t* const* srcs, const double* coeffs, int k, DType s,
                 uint8_t* dst, DType d, size_t n, Combine mode, int nthreads);

}  // namespace modelgit
