// CountSketch of a float buffer (k float64 sums), independent of the thread count.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/common.hpp"

namespace modelgit {

constexpr size_t kSketchBlock = 65536;
constexpr uint64_t kMaxSketchK = uint64_t(1) << 24;

inline uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// x: n elements of dtype; out: k doubles (written, not accumulated).
void sketch(const uint8_t* x, size_t n, DType dt, uint64_t k, uint64_t seed, double* out,
            int nthreads);

// Sketches of several parts of x (part j: counts[j] elements from element starts[j],
// hashed with seeds[j]), single-threaded, added into out (k doubles, zeroed first) in
// part order; returns the sum of squares of their finite elements (each part summed in
// element order, the part sums added in part order) and counts the elements equal to
// zero into *zeros. The caller checks that every part lies within x.
double sketch_parts(const uint8_t* x, DType dt, uint64_t k, const uint64_t* starts,
                    const uint64_t* counts, const uint64_t* seeds, size_t nparts, double* out,
                    uint64_t* zeros);

}  // namespace modelgit
