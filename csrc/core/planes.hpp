// Byte-plane transform fused with an optional XOR / SUB / OSUB delta against a base.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/params.hpp"  // Delta

namespace modelgit {

// data, base (nullptr iff delta == DELTA_NONE) and out all hold m words of elem_size
// bytes; out must not overlap the inputs. Parameters must already be valid.
void planes_encode(const uint8_t* data, const uint8_t* base, uint8_t* out, size_t m,
                   int elem_size, int delta, bool rotate, int nthreads);
void planes_decode(const uint8_t* planes, const uint8_t* base, uint8_t* out, size_t m,
                   int elem_size, int delta, bool rotate, int nthreads);
// The same, with plane p (m bytes) at planes[p] (elem_size pointers), anywhere in memory.
void planes_decode_split(const uint8_t* const* planes, const uint8_t* base, uint8_t* out,
                         size_t m, int elem_size, int delta, bool rotate, int nthreads);
// planes_decode_split in place: out holds the base (m words) and receives the result;
// delta must not be DELTA_NONE.
void planes_apply_split(const uint8_t* const* planes, uint8_t* out, size_t m, int elem_size,
                        int delta, bool rotate, int nthreads);

// planes_decode_split of a delta (not DELTA_NONE) whose base is itself given as planes:
// the base is planes_decode_split(base_planes, nullptr, ., m, elem_size, DELTA_NONE,
// base_rotate), in the same pass (the base is never written out).
void planes_decode_pair(const uint8_t* const* base_planes, bool base_rotate,
                        const uint8_t* const* planes, uint8_t* out, size_t m, int elem_size,
                        int delta, bool rotate, int nthreads);

// The zero mask of the predicted codec: bit i of mask (ceil(m / 8) bytes, least
// significant bit first) is set iff word i of data is zero; out is pred with those words
// zeroed. data, pred and out hold m words of elem_size bytes; out overlaps no input.
void zero_mask(const uint8_t* data, const uint8_t* pred, uint8_t* out, uint8_t* mask, size_t m,
               int elem_size);

}  // namespace modelgit
