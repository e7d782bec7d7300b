// Order-0 rANS entropy coder for byte streams (FORMAT.md section 3, section method 2).
//
// A static model per stream: byte frequencies normalized to 2^kRansScaleBits, written in
// a compact table, then sixteen interleaved 32-bit rANS states sharing one word stream.
// Near order-0 entropy (exponent planes of float weights, residual planes of deltas),
// where zstd's Huffman literals leave a few percent on the table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace modelgit {

constexpr int kRansScaleBits = 12;
constexpr int kRansStates = 16;

// Normalized frequencies of data (sum 2^kRansScaleBits; a byte that occurs gets >= 1)
// and the size rans_encode will produce with them.
struct RansModel {
  uint32_t freq[256];
  size_t encoded_size;  // estimate, within a few bytes of the coded size
};
RansModel rans_model(const uint8_t* data, size_t n);  // n >= 1

// Encode n >= 1 bytes with `model` (from rans_model of the same data). Returns the
// stream: [u8 scale bits][frequency table][16 x u32 states][16-bit words].
// simd = false forces the portable loop (the SSE4.1 one writes identical streams).
std::vector<uint8_t> rans_encode(const uint8_t* data, size_t n, const RansModel& model,
                                 bool simd = true);

// The decode loops. kAuto is the fastest one this CPU runs; every loop gives identical
// results and refuses the same invalid streams (tests check each against the others).
enum class RansDecoder { kAuto, kPortable, kSse41 };
const char* rans_decoder_name(RansDecoder d);  // "auto", "portable", "sse4.1"
bool rans_decoder_supported(RansDecoder d);     // built in and runnable on this CPU
RansDecoder rans_best_decoder();                // the fastest supported loop (never kAuto)

// Decode a stream into exactly n bytes at out with the given loop (one that is not
// supported runs as kAuto). Returns an empty string on success, else why the stream is
// invalid (truncated, bad table, trailing bytes, wrong final state).
std::string rans_decode(const uint8_t* src, size_t len, uint8_t* out, size_t n,
                        RansDecoder decoder = RansDecoder::kAuto);

}  // namespace modelgit
