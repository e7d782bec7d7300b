#include "core/planes.hpp"

#include <type_traits>

#include "core/common.hpp"
#include "core/isa.hpp"

#if defined(__GNUC__) && defined(__x86_64__)
#define MG_PLANES_SSE2 1  // the gather of core/planes_kernels.inc
#include <emmintrin.h>
#endif

namespace modelgit {
#define MG_KERNELS_FILE "core/planes_kernels.inc"
#include "core/isa_copies.inc"

namespace {
using isa_base::DecodeFn;
using isa_base::EncodeFn;
using isa_base::kBlock;
using isa_base::PairFn;
}  // namespace

void planes_encode(const uint8_t* data, const uint8_t* base, uint8_t* out, size_t m,
                   int elem_size, int delta, bool rotate, int nthreads) {
  if (m == 0) return;
  EncodeFn fn = MG_ISA_PICK(pick<true>(elem_size, delta, rotate));
  parallel_for(m, nthreads, kBlock, [&](int, size_t b, size_t e) {
    if (b < e) fn(data, base, out, m, b, e);
  });
}

void planes_decode_split(const uint8_t* const* planes, const uint8_t* base, uint8_t* out,
                         size_t m, int elem_size, int delta, bool rotate, int nthreads) {
  if (m == 0) return;
  DecodeFn fn = MG_ISA_PICK(pick<false>(elem_size, delta, rotate));
  parallel_for(m, nthreads, kBlock, [&](int, size_t b, size_t e) {
    if (b < e) fn(planes, base, out, b, e);
  });
}

void planes_apply_split(const uint8_t* const* planes, uint8_t* out, size_t m, int elem_size,
                        int delta, bool rotate, int nthreads) {
  if (m == 0) return;
  DecodeFn fn = MG_ISA_PICK(pick_apply(elem_size, delta, rotate));
  parallel_for(m, nthreads, kBlock, [&](int, size_t b, size_t e) {
    if (b < e) fn(planes, nullptr, out, b, e);
  });
}

void planes_decode_pair(const uint8_t* const* base_planes, bool base_rotate,
                        const uint8_t* const* planes, uint8_t* out, size_t m, int elem_size,
                        int delta, bool rotate, int nthreads) {
  if (m == 0) return;
  PairFn fn = MG_ISA_PICK(pick_pair(elem_size, delta, rotate, base_rotate));
  parallel_for(m, nthreads, kBlock, [&](int, size_t b, size_t e) {
    if (b < e) fn(base_planes, planes, out, b, e);
  });
}

void planes_decode(const uint8_t* planes, const uint8_t* base, uint8_t* out, size_t m,
                   int elem_size, int delta, bool rotate, int nthreads) {
  const uint8_t* split[8];
  for (int p = 0; p < elem_size; ++p) split[p] = planes + size_t(p) * m;
  planes_decode_split(split, base, out, m, elem_size, delta, rotate, nthreads);
}

namespace {
template <typename T>
void zero_mask_t(const uint8_t* data, const uint8_t* pred, uint8_t* out, uint8_t* mask, size_t m) {
  for (size_t b = 0; b < (m + 7) / 8; ++b) {
    uint8_t bits = 0;
    const size_t i0 = b * 8, i1 = std::min(m, i0 + 8);
    for (size_t i = i0; i < i1; ++i) {
      const bool zero = load<T>(data + i * sizeof(T)) == 0;
      bits |= uint8_t(zero) << (i - i0);
      store<T>(out + i * sizeof(T), zero ? T(0) : load<T>(pred + i * sizeof(T)));
    }
    mask[b] = bits;
  }
}
}  // namespace

void zero_mask(const uint8_t* data, const uint8_t* pred, uint8_t* out, uint8_t* mask, size_t m,
               int elem_size) {
  switch (elem_size) {
    case 1: zero_mask_t<uint8_t>(data, pred, out, mask, m); break;
    case 2: zero_mask_t<uint16_t>(data, pred, out, mask, m); break;
    case 4: zero_mask_t<uint32_t>(data, pred, out, mask, m); break;
    default: zero_mask_t<uint64_t>(data, pred, out, mask, m); break;
  }
}

}  // namespace modelgit
