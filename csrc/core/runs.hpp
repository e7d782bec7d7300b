// Runs sections (FORMAT.md section 3.5, section method 3): a byte stream dominated by one
// value (the high planes of a fine-tune's residual) as its literals (the bytes that are
// not the value) and the lengths of the runs of the value between them, each part rANS
// coded (or stored raw when that is no larger).
//
// rANS decodes one value per step however skewed the data; a plane that is 98% zeros
// costs as much per byte as an exponent plane. Here the decoder entropy-decodes only the
// literals and the run bytes (a few percent of the plane), fills the output with the
// value and drops the literals in: same size as order-0 rANS of the plane (the run
// lengths carry the same information as the value's share), several times faster.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace modelgit {

// A runs section needs the dominant value to hold at least this share of the bytes
// (in 1/256ths: 192 = 3/4); below it the literals and runs are too many to pay.
constexpr unsigned kRunsMinShare256 = 192;

// The runs section of data[0..n), or an empty vector when no value holds the share
// above (n >= 1; from 64 KiB on, a strided sample of 4,096 bytes is looked at first).
std::vector<uint8_t> runs_encode(const uint8_t* data, size_t n);

// Decode a runs section into exactly n bytes at out. Returns an empty string on
// success, else why the section is invalid (truncated, a bad part, runs that do not
// add up to n, trailing bytes).
std::string runs_decode(const uint8_t* src, size_t len, uint8_t* out, size_t n);

}  // namespace modelgit
