// The parameters modelgit._core and modelgit._cuda share: the delta modes, the float
// kinds, and the checks both bindings make on them, written once.
//
// Pure C++ (no Python, no CUDA headers: nvcc compiles it too, through cuda/api.cuh). A
// failed check throws std::invalid_argument, which pybind11 raises as ValueError with
// the same message.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace modelgit {

// ---- delta modes (planes_encode / planes_decode) ------------------------------------
enum Delta : int { DELTA_NONE = 0, DELTA_XOR = 1, DELTA_SUB = 2, DELTA_OSUB = 3 };

// ---- float kinds (qdelta, sketch) ---------------------------------------------------
enum class DType : int { F64 = 0, F32 = 1, F16 = 2, BF16 = 3 };

inline bool parse_dtype(const std::string& s, DType& dt) {
  if (s == "float64") dt = DType::F64;
  else if (s == "float32") dt = DType::F32;
  else if (s == "float16") dt = DType::F16;
  else if (s == "bfloat16") dt = DType::BF16;
  else return false;
  return true;
}
inline size_t dtype_size(DType dt) {
  switch (dt) {
    case DType::F64: return 8;
    case DType::F32: return 4;
    default: return 2;
  }
}

// ---- checks -------------------------------------------------------------------------

// The float kind named `s`.
inline DType check_dtype(const std::string& s) {
  DType dt;
  if (!parse_dtype(s, dt))
    throw std::invalid_argument(
        "dtype must be 'float64', 'float32', 'float16' or 'bfloat16', got '" + s + "'");
  return dt;
}

inline void check_elem_size(long long e) {
  if (e != 1 && e != 2 && e != 4 && e != 8)
    throw std::invalid_argument("elem_size must be 1, 2, 4 or 8, got " + std::to_string(e));
}

inline void check_delta(long long d) {
  if (d != DELTA_NONE && d != DELTA_XOR && d != DELTA_SUB && d != DELTA_OSUB)
    throw std::invalid_argument(
        "delta must be DELTA_NONE (0), DELTA_XOR (1), DELTA_SUB (2) or DELTA_OSUB (3), got " +
        std::to_string(d));
}

// `nbytes` (the length of the buffer called `name`) is a whole number of elements.
inline void check_whole_elems(uint64_t nbytes, long long elem_size, const char* name) {
  if (nbytes % uint64_t(elem_size) != 0)
    throw std::invalid_argument(std::string(name) + ": length " + std::to_string(nbytes) +
                                " is not a multiple of elem_size " + std::to_string(elem_size));
}

// A base is given iff delta != DELTA_NONE. need_base=false accepts a missing base with a
// delta (the CUDA module, for an empty input: an empty tensor's data_ptr() is 0).
inline void check_delta_base(long long delta, bool has_base, bool need_base = true) {
  if (delta == DELTA_NONE && has_base)
    throw std::invalid_argument(
        "base given but delta is DELTA_NONE; pass delta=DELTA_XOR or DELTA_SUB");
  if (delta != DELTA_NONE && !has_base && need_base)
    throw std::invalid_argument("delta != DELTA_NONE requires base");
}

// The base has as many bytes as the input; `holder` names the input and its verb
// ("data has", "the planes hold").
inline void check_base_size(uint64_t base_bytes, const std::string& holder, uint64_t nbytes) {
  if (base_bytes != nbytes)
    throw std::invalid_argument("base has " + std::to_string(base_bytes) + " bytes but " +
                                holder + " " + std::to_string(nbytes) + "; they must be equal");
}

// qdelta: the bound eps, and the step 2*eps the 32/16-bit kinds compute in float32.
inline void check_eps(double eps, DType dt) {
  if (!std::isfinite(eps) || !(eps > 0))
    throw std::invalid_argument("eps must be finite and > 0, got " + std::to_string(eps));
  if (dt != DType::F64 && !(float(2.0 * eps) > 0.0f))
    throw std::invalid_argument(
        "eps is too small: float32(2*eps) is 0 for a 32/16-bit dtype");
}

// lowbit: bits per code and elements per group.
inline int check_bits(long long b) {
  if (b != 1 && b != 2 && b != 4 && b != 8)
    throw std::invalid_argument("bits must be 1, 2, 4 or 8, got " + std::to_string(b));
  return int(b);
}
inline uint64_t check_group(long long g) {
  if (g < 1) throw std::invalid_argument("group must be >= 1, got " + std::to_string(g));
  return uint64_t(g);
}

// A count (n, nbytes, n_exc) is >= 0.
inline uint64_t check_count(long long v, const char* name) {
  if (v < 0)
    throw std::invalid_argument(std::string(name) + " must be >= 0, got " + std::to_string(v));
  return uint64_t(v);
}

}  // namespace modelgit
