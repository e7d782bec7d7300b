#include "core/qdelta.hpp"

namespace modelgit {
namespace {

constexpr double kMaxCode = 2147483647.0;

// Per-dtype element access for the float32-arithmetic types.
template <DType D>
struct Narrow;
template <>
struct Narrow<DType::F32> {
  using Raw = uint32_t;
  static float widen(Raw r) { return bits_f32(r); }
  static Raw narrow(float f) { return f32_bits(f); }
};
template <>
struct Narrow<DType::F16> {
  using Raw = uint16_t;
  static float widen(Raw r) { return f16_to_f32(r); }
  static Raw narrow(float f) { return f32_to_f16(f); }
};
template <>
struct Narrow<DType::BF16> {
  using Raw = uint16_t;
  static float widen(Raw r) { return bf16_to_f32(r); }
  static Raw narrow(float f) { return f32_to_bf16(f); }
};

inline bool finite_f(float f) { return (f32_bits(f) & 0x7F800000u) != 0x7F800000u; }
inline bool finite_d(double d) {
  return (f64_bits(d) & 0x7FF0000000000000ull) != 0x7FF0000000000000ull;
}

// Returns true and the code if element (xr, br) is representable, else false.
template <DType D>
inline bool encode_one(const uint8_t* xp, const uint8_t* bp, double eps, float s, double sd,
                       int32_t& code) {
  if constexpr (D == DType::F64) {
    const double x = load<double>(xp), b = load<double>(bp);
    if (!finite_d(x) || !finite_d(b)) return false;
    const double v = (x - b) / sd;
    if (!(std::fabs(v) < 2147483648.0)) return false;
    const double q = rint_even(v);
    if (std::fabs(q) > kMaxCode) return false;
    const int32_t c = int32_t(q);
    const double dec = b + double(c) * sd;
    if (!finite_d(dec) || std::fabs(dec - x) > eps) return false;
    code = c;
    return true;
  } else {
    using N = Narrow<D>;
    using Raw = typename N::Raw;
    const float x = N::widen(load<Raw>(xp)), b = N::widen(load<Raw>(bp));
    if (!finite_f(x) || !finite_f(b)) return false;
    const double v = (double(x) - double(b)) / double(s);
    if (!(std::fabs(v) < 2147483648.0)) return false;
    const double q = rint_even(v);
    if (std::fabs(q) > kMaxCode) return false;
    const int32_t c = int32_t(q);
    const float prod = float(c) * s;
    const float sum = b + prod;
    const float dec = N::widen(N::narrow(sum));
    if (!finite_f(dec) || std::fabs(double(dec) - double(x)) > eps) return false;
    code = c;
    return true;
  }
}

template <DType D>
inline void decode_one(const uint8_t* cp, const uint8_t* bp, uint8_t* op, float s, double sd) {
  const int32_t c = load<int32_t>(cp);
  if constexpr (D == DType::F64) {
    store<double>(op, load<double>(bp) + double(c) * sd);
  } else {
    using N = Narrow<D>;
    using Raw = typename N::Raw;
    const float b = N::widen(load<Raw>(bp));
    const float prod = float(c) * s;
    const float sum = b + prod;
    store<Raw>(op, N::narrow(sum));
  }
}

template <DType D>
void encode_range(const uint8_t* x, const uint8_t* base, uint8_t* codes, size_t i0, size_t i1,
                  double eps, float s, double sd, QDeltaExceptions& exc) {
  constexpr size_t E = D == DType::F64 ? 8 : D == DType::F32 ? 4 : 2;
  for (size_t i = i0; i < i1; ++i) {
    int32_t c = 0;
    if (!encode_one<D>(x + i * E, base + i * E, eps, s, sd, c)) {
      c = 0;
      exc.index.push_back(uint64_t(i));
      exc.values.insert(exc.values.end(), x + i * E, x + (i + 1) * E);
    }
    store<int32_t>(codes + i * 4, c);
  }
}

template <DType D>
void decode_range(const uint8_t* codes, const uint8_t* base, uint8_t* out, size_t i0, size_t i1,
                  float s, double sd) {
  constexpr size_t E = D == DType::F64 ? 8 : D == DType::F32 ? 4 : 2;
  for (size_t i = i0; i < i1; ++i) decode_one<D>(codes + i * 4, base + i * E, out + i * E, s, sd);
}

template <typename F>
void dispatch(DType dt, F&& f) {
  switch (dt) {
    case DType::F64: f(std::integral_constant<DType, DType::F64>{}); break;
    case DType::F32: f(std::integral_constant<DType, DType::F32>{}); break;
    case DType::F16: f(std::integral_constant<DType, DType::F16>{}); break;
    case DType::BF16: f(std::integral_constant<DType, DType::BF16>{}); break;
  }
}

}  // namespace

QDeltaExceptions qdelta_encode(const uint8_t* x, const uint8_t* base, uint8_t* codes, size_t n,
                               DType dt, double eps, int nthreads) {
  const double sd = 2.0 * eps;
  const float s = float(sd);
  std::vector<QDeltaExceptions> parts(size_t(std::max(nthreads, 1)));
  int used = 1;
  dispatch(dt, [&](auto d) {
    constexpr DType D = decltype(d)::value;
    used = parallel_for(n, nthreads, 4096, [&](int t, size_t b, size_t e) {
      encode_range<D>(x, base, codes, b, e, eps, s, sd, parts[size_t(t)]);
    });
  });
  if (used == 1) return std::move(parts[0]);
  QDeltaExceptions all;
  size_t ni = 0, nv = 0;
  for (int t = 0; t < used; ++t) {
    ni += parts[size_t(t)].index.size();
    nv += parts[size_t(t)].values.size();
  }
  all.index.reserve(ni);
  all.values.reserve(nv);
  for (int t = 0; t < used; ++t) {
    auto& p = parts[size_t(t)];
    all.index.insert(all.index.end(), p.index.begin(), p.index.end());
    all.values.insert(all.values.end(), p.values.begin(), p.values.end());
  }
  return all;
}

const char* qdelta_check_exceptions(const uint8_t* exc_index, size_t count, size_t n) {
  uint64_t prev = 0;
  for (size_t j = 0; j < count; ++j) {
    const uint64_t k = load<uint64_t>(exc_index + j * 8);
    if (k >= uint64_t(n)) return "exc_index: an exception index is out of range (>= n)";
    if (j > 0 && k <= prev) return "exc_index: indices must be strictly ascending";
    prev = k;
  }
  return "";
}

void qdelta_decode(const uint8_t* codes, const uint8_t* base, const uint8_t* exc_index,
                   const uint8_t* exc_values, size_t count, uint8_t* out, size_t n, DType dt,
                   double eps, int nthreads) {
  const double sd = 2.0 * eps;
  const float s = float(sd);
  dispatch(dt, [&](auto d) {
    constexpr DType D = decltype(d)::value;
    parallel_for(n, nthreads, 4096,
                 [&](int, size_t b, size_t e) { decode_range<D>(codes, base, out, b, e, s, sd); });
  });
  const size_t E = dtype_size(dt);
  for (size_t j = 0; j < count; ++j) {
    const uint64_t k = load<uint64_t>(exc_index + j * 8);
    std::memcpy(out + size_t(k) * E, exc_values + j * E, E);
  }
}

}  // namespace modelgit
