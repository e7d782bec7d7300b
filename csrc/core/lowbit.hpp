// Low-bit quantization of float32 with per-group scales, and LSB-first bit packing.
#pragma once

#include <cstddef>
#include <cstdint>

namespace modelgit {

inline size_t packed_size(size_t n, int bits) { return (n * size_t(bits) + 7) / 8; }

// x: n float32; packed: packed_size(n, bits) bytes; scales, offsets: ceil(n/group) float32.
void lowbit_quantize(const uint8_t* x, size_t n, int bits, size_t group, uint8_t* packed,
                     uint8_t* scales, uint8_t* offsets, int nthreads);
void lowbit_dequantize(const uint8_t* packed, const uint8_t* scales, const uint8_t* offsets,
                       int bits, size_t group, size_t n, uint8_t* out, int nthreads);

// Returns false (and writes nothing meaningful) if a code is >= 2**bits.
bool pack_bits(const uint8_t* codes, size_t n, int bits, uint8_t* out, int nthreads);
void unpack_bits(const uint8_t* packed, size_t n, int bits, uint8_t* out, int nthreads);

}  // namespace modelgit
