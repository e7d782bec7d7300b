// Pricing a chunk's ways of coding on a sample of it (storage/policy.py): the cost of a
// residual against a prediction, the order-0 entropy of byte planes (what standalone
// coding nearly reaches), the median log ratio of two float samples (a common scale).
// Small inputs (a few thousand words): single-threaded, the caller releases the GIL.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/common.hpp"

namespace modelgit {

struct ResidualBits {
  double plain;   // mean of log2(1 + |double(y_i) - double(p_i)|)
  double masked;  // the same with zero y_i costing 0, plus the binary entropy of the zero share
};

// y, p: n little-endian unsigned words of E bytes (E in {1, 2, 4, 8}); n > 0.
ResidualBits residual_bits(const uint8_t* y, const uint8_t* p, size_t n, size_t E);

// Sum over the E byte planes of n words (each rotated left by one bit within its E bytes
// first when `rotate`) of the plane's order-0 entropy, in bits per word; 0 for n == 0.
double plane_entropy(const uint8_t* w, size_t n, size_t E, bool rotate);

struct LogScale {
  size_t count;   // elements where both are finite, nonzero and of one sign
  double median;  // median of log(|y_i| / |b_i|) over them (NaN if none)
};

// Over the elements 0, step, 2 step, ... of y and b (n elements of dtype each).
LogScale log_ratio_median(const uint8_t* y, const uint8_t* b, size_t n, DType dt, size_t step);

}  // namespace modelgit
