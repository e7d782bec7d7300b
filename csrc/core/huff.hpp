// Huffman sections (FORMAT.md section 3.6, section method 4): order-0 prefix codes of at
// most 11 bits, four bit streams, decoded several values per table lookup.
//
// rANS (section method 2) codes the exponent planes of float weights within a hair of
// their entropy but decodes one value per step. A Huffman code of those planes is
// 1.4-2.1% larger, and its decoder reads 11 bits at a time and looks up every whole code
// they hold (up to six values; about 3.7 on exponent planes): with four independent
// streams it decodes about 1.7 times as fast. The writer keeps it where it is at most
// 3% larger than rANS (codec/entropy.py).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace modelgit {

constexpr int kHuffMaxBits = 11;  // the longest code: the decoder's table has 2^11 entries
constexpr int kHuffStreams = 4;

// Code lengths (0 = absent, else 1..kHuffMaxBits) for a histogram: Huffman's, the longer
// ones shortened to kHuffMaxBits and the rest lengthened until the code fits.
void huff_lengths(const uint64_t* count, uint8_t* len);

// The Huffman section of data[0..n), n >= 1, or an empty vector when it would be
// longer than max_size (known from the histograms, before any coding); and its size
// alone (the same as huff_encode(...).size()).
std::vector<uint8_t> huff_encode(const uint8_t* data, size_t n, size_t max_size = SIZE_MAX);
size_t huff_estimate(const uint8_t* data, size_t n);

// Decode a Huffman section into exactly n bytes at out. Returns an empty string on
// success, else why the section is invalid (truncated, a bad code, streams that do not
// end where their lengths say, trailing bytes).
std::string huff_decode(const uint8_t* src, size_t len, uint8_t* out, size_t n);

}  // namespace modelgit
