#include "core/sketch.hpp"

namespace modelgit {
namespace {

template <DType D>
void block_sums(const uint8_t* x, size_t i0, size_t i1, uint64_t k, uint64_t off, double* s) {
  constexpr size_t E = D == DType::F64 ? 8 : D == DType::F32 ? 4 : 2;
  std::fill(s, s + k, 0.0);
  for (size_t i = i0; i < i1; ++i) {
    const double v = widen_f64<D>(x + i * E);
    if (!std::isfinite(v)) continue;
    const uint64_t h = splitmix64(uint64_t(i) + off);
    const uint64_t bucket = ((h >> 32) * k) >> 32;
    s[bucket] += (h & 1u) ? v : -v;
  }
}

}  // namespace

void sketch(const uint8_t* x, size_t n, DType dt, uint64_t k, uint64_t seed, double* out,
            int nthreads) {
  std::fill(out, out + k, 0.0);
  if (n == 0) return;
  const uint64_t off = seed * 0x9E3779B97F4A7C15ull;
  const size_t nblocks = (n + kSketchBlock - 1) / kSketchBlock;
  // Block partial sums are kept for a wave of blocks, then added in block order.
  const size_t limit = size_t(1) << 22;  // doubles of partial sums held at once
  size_t wave = std::max<size_t>(size_t(std::max(nthreads, 1)), limit / size_t(k));
  wave = std::min(wave, nblocks);
  std::vector<double> part(wave * size_t(k));
  auto run = [&](auto d) {
    constexpr DType D = decltype(d)::value;
    for (size_t w0 = 0; w0 < nblocks; w0 += wave) {
      const size_t nb = std::min(wave, nblocks - w0);
      parallel_for(nb, nthreads, 1, [&](int, size_t b0, size_t b1) {
        for (size_t b = b0; b < b1; ++b) {
          const size_t blk = w0 + b;
          const size_t i0 = blk * kSketchBlock, i1 = std::min(n, i0 + kSketchBlock);
          block_sums<D>(x, i0, i1, k, off, part.data() + b * size_t(k));
        }
      });
      for (size_t b = 0; b < nb; ++b) {
        const double* p = part.data() + b * size_t(k);
        for (uint64_t j = 0; j < k; ++j) out[j] += p[j];
      }
    }
  };
  switch (dt) {
    case DType::F64: run(std::integral_constant<DType, DType::F64>{}); break;
    case DType::F32: run(std::integral_constant<DType, DType::F32>{}); break;
    case DType::F16: run(std::integral_constant<DType, DType::F16>{}); break;
    case DType::BF16: run(std::integral_constant<DType, DType::BF16>{}); break;
  }
}

double sketch_parts(const uint8_t* x, DType dt, uint64_t k, const uint64_t* starts,
                    const uint64_t* counts, const uint64_t* seeds, size_t nparts, double* out,
                    uint64_t* zeros) {
  std::fill(out, out + k, 0.0);
  *zeros = 0;
  const size_t E = dtype_size(dt);
  std::vector<double> one(k);
  double norm2 = 0.0;
  auto squares = [&](auto d, const uint8_t* p, size_t n) {
    constexpr DType D = decltype(d)::value;
    double s = 0.0;
    for (size_t i = 0; i < n; ++i) {
      const double v = widen_f64<D>(p + i * E);
      if (v == 0.0) ++*zeros;
      if (std::isfinite(v)) s += v * v;
    }
    return s;
  };
  for (size_t j = 0; j < nparts; ++j) {
    const uint8_t* p = x + starts[j] * E;
    sketch(p, counts[j], dt, k, seeds[j], one.data(), 1);
    for (uint64_t i = 0; i < k; ++i) out[i] += one[i];
    switch (dt) {
      case DType::F64: norm2 += squares(std::integral_constant<DType, DType::F64>{}, p, counts[j]); break;
      case DType::F32: norm2 += squares(std::integral_constant<DType, DType::F32>{}, p, counts[j]); break;
      case DType::F16: norm2 += squares(std::integral_constant<DType, DType::F16>{}, p, counts[j]); break;
      case DType::BF16: norm2 += squares(std::integral_constant<DType, DType::BF16>{}, p, counts[j]); break;
    }
  }
  return norm2;
}

}  // namespace modelgit
