#include "core/price.hpp"

namespace modelgit {
namespace {

template <typename T>
ResidualBits residual_t(const uint8_t* y, const uint8_t* p, size_t n) {
  double all = 0.0, nonzero = 0.0;
  size_t zeros = 0;
  for (size_t i = 0; i < n; ++i) {
    const T a = load<T>(y + i * sizeof(T)), b = load<T>(p + i * sizeof(T));
    const double d = std::log2(1.0 + std::fabs(double(a) - double(b)));
    all += d;
    if (a == 0) ++zeros;
    else nonzero += d;
  }
  const double share = double(zeros) / double(n);
  double entropy = 0.0;
  if (share > 0.0 && share < 1.0)
    entropy = -(share * std::log2(share) + (1.0 - share) * std::log2(1.0 - share));
  return {all / double(n), nonzero / double(n) + entropy};
}

template <DType D>
LogScale log_ratio_t(const uint8_t* y, const uint8_t* b, size_t n, size_t step) {
  constexpr size_t E = D == DType::F64 ? 8 : D == DType::F32 ? 4 : 2;
  std::vector<double> r;
  r.reserve(n / step + 1);
  for (size_t i = 0; i < n; i += step) {
    const double fy = widen_f64<D>(y + i * E), fb = widen_f64<D>(b + i * E);
    if (!std::isfinite(fy) || !std::isfinite(fb) || !(fy * fb > 0.0)) continue;
    r.push_back(std::fabs(fy) / std::fabs(fb));
  }
  const size_t m = r.size();
  if (m == 0) return {0, std::numeric_limits<double>::quiet_NaN()};
  // log is monotonic: the middle logs are the logs of the middle ratios (a ratio of
  // finite nonzero values is positive or +inf, never NaN), so only those two are taken
  const size_t lo = (m - 1) / 2, hi = m / 2;
  std::nth_element(r.begin(), r.begin() + hi, r.end());
  const double vhi = r[hi];
  const double vlo = lo == hi ? vhi : *std::max_element(r.begin(), r.begin() + hi);
  return {m, (std::log(vlo) + std::log(vhi)) / 2.0};
}

}  // namespace

ResidualBits residual_bits(const uint8_t* y, const uint8_t* p, size_t n, size_t E) {
  if (n == 0) return {0.0, 0.0};
  switch (E) {
    case 1: return residual_t<uint8_t>(y, p, n);
    case 2: return residual_t<uint16_t>(y, p, n);
    case 4: return residual_t<uint32_t>(y, p, n);
    default: return residual_t<uint64_t>(y, p, n);
  }
}

double plane_entropy(const uint8_t* w, size_t n, size_t E, bool rotate) {
  if (n == 0) return 0.0;
  std::vector<uint64_t> counts(256 * E, 0);  // a plane may hold 2**32 words or more
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* x = w + i * E;
    if (rotate) {
      // rotl by one bit within E bytes (little-endian): each byte takes the top bit of
      // the byte below it; byte 0 takes the word's top bit
      uint8_t carry = uint8_t(x[E - 1] >> 7);
      for (size_t j = 0; j < E; ++j) {
        const uint8_t v = uint8_t((x[j] << 1) | carry);
        carry = uint8_t(x[j] >> 7);
        ++counts[256 * j + v];
      }
    } else {
      for (size_t j = 0; j < E; ++j) ++counts[256 * j + x[j]];
    }
  }
  double bits = 0.0;
  for (uint64_t c : counts) {
    if (c == 0) continue;
    const double q = double(c) / double(n);
    bits -= q * std::log2(q);
  }
  return bits;
}

LogScale log_ratio_median(const uint8_t* y, const uint8_t* b, size_t n, DType dt, size_t step) {
  if (step == 0) step = 1;
  switch (dt) {
    case DType::F64: return log_ratio_t<DType::F64>(y, b, n, step);
    case DType::F32: return log_ratio_t<DType::F32>(y, b, n, step);
    case DType::F16: return log_ratio_t<DType::F16>(y, b, n, step);
    default: return log_ratio_t<DType::BF16>(y, b, n, step);
  }
}

}  // namespace modelgit
