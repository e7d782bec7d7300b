// Huffman sections: see huff.hpp and FORMAT.md section 3.6.
//
// Canonical codes: the present values sorted by (length, value) take consecutive codes,
// the code doubling at each longer length. Bits are written least significant first;
// a code goes out from its first (most significant) bit, so the decoder indexes its
// table with the next 11 bits of the stream as they come (the codes bit-reversed).
// The values are cut into four segments of ceil(n / 4) (the last shorter), each coded
// into its own stream, so that a decoder runs four independent chains.
#include "core/huff.hpp"

#include "core/common.hpp"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>

namespace modelgit {
namespace {

constexpr uint32_t kTable = 1u << kHuffMaxBits;
constexpr uint32_t kMask = kTable - 1;
constexpr int kMaxPerLookup = 6;  // values one table entry holds
constexpr size_t kFixed = 2 + 4 * (kHuffStreams - 1);  // f, c - 1 and the stream lengths


// The canonical code of each value (bit-reversed: first bit lowest). False when the
// lengths do not make a prefix code (Kraft sum over 1).
bool canonical(const uint8_t* len, uint32_t* rev) {
  uint32_t code = 0;
  for (int l = 1; l <= kHuffMaxBits; ++l) {
    for (int s = 0; s < 256; ++s) {
      if (len[s] != l) continue;
      if (code >> l) return false;  // the codes of this length ran out
      uint32_t r = 0;
      for (int b = 0; b < l; ++b) r |= (code >> b & 1u) << (l - 1 - b);
      rev[s] = r;
      ++code;
    }
    code <<= 1;
  }
  return true;
}

// The segment of stream k: values [begin, end).
inline void segment(size_t n, int k, size_t* begin, size_t* end) {
  const size_t q = (n + kHuffStreams - 1) / kHuffStreams;
  *begin = std::min(n, size_t(k) * q);
  *end = std::min(n, size_t(k + 1) * q);
}

void counts_by_segment(const uint8_t* data, size_t n, uint64_t (*seg)[256]) {
  for (int k = 0; k < kHuffStreams; ++k) {
    size_t b, e;
    segment(n, k, &b, &e);
    byte_counts(data + b, e - b, seg[k]);
  }
}

size_t stream_bytes(const uint64_t* count, const uint8_t* len) {
  uint64_t bits = 0;
  for (int s = 0; s < 256; ++s) bits += count[s] * len[s];
  return size_t((bits + 7) / 8);
}

// The tables of a decoder. single[i]: the value whose code the low bits of i start
// with, and the code's length (0: no code starts so). multi[i]: bits 0..5 the total
// length of every whole code the 11 bits of i hold (so that the entry itself is the
// shift count of the bit buffer: shorter dependency chains), bytes 1..6 their values in
// order (at most six), byte 7 their number (0 where no code starts so: then the length
// is 11 and bit 7, kBadEntry, is set, so that a decoder ORs the entries it uses and
// checks once).
constexpr uint64_t kBadEntry = 0x80;
struct DecTables {
  uint16_t single[kTable];  // length << 8 | value
  uint64_t multi[kTable];
};

bool build_tables(const uint8_t* len, DecTables& t) {
  uint32_t rev[256];
  if (!canonical(len, rev)) return false;
  std::memset(t.single, 0, sizeof t.single);
  for (int s = 0; s < 256; ++s) {
    if (!len[s]) continue;
    for (uint32_t hi = 0; hi < (kTable >> len[s]); ++hi)
      t.single[rev[s] | hi << len[s]] = uint16_t(len[s] << 8 | s);
  }
  for (uint32_t i = 0; i < kTable; ++i) {
    uint64_t syms = 0;
    uint32_t bits = i, avail = kHuffMaxBits, used = 0, count = 0;
    while (count < kMaxPerLookup) {
      const uint32_t e = t.single[bits & kMask];  // bits past avail read as zeros
      const uint32_t l = e >> 8;
      if (l == 0 || l > avail) break;
      syms |= uint64_t(e & 0xff) << (8 * count);
      ++count;
      used += l;
      avail -= l;
      bits >>= l;
    }
    t.multi[i] = syms << 8 | (count ? used : kHuffMaxBits) | uint64_t(count) << 56 |
                 (count ? 0 : kBadEntry);
  }
  return true;
}

struct Stream {
  const uint8_t* src;  // its bytes
  size_t len;          // their number
  uint64_t bit;        // bits consumed
  uint8_t* out;        // the next value goes here
  uint8_t* end;        // the end of its segment
};

// Stores the fast loop's locals back into the streams; returns seen.
uint64_t put_back(Stream* s, const uint64_t* bit, uint8_t* const* out, uint64_t seen) {
  for (int k = 0; k < kHuffStreams; ++k) {
    s[k].bit = bit[k];
    s[k].out = out[k];
  }
  return seen;
}

// The four streams side by side while each has 8 bytes to read and room for five
// lookups (8-byte stores, each advancing at most six values). The streams' state is
// kept in locals: a store through a byte pointer may alias anything reachable.
// Returns the OR of the entries used.
uint64_t decode_fast(Stream* s, const uint64_t* multi) {
  constexpr size_t kBlockBits = 5 * kHuffMaxBits, kBlockValues = 5 * kMaxPerLookup;
  const uint8_t* src[kHuffStreams];
  uint64_t bit[kHuffStreams];
  uint8_t* out[kHuffStreams];
  for (int k = 0; k < kHuffStreams; ++k) {
    src[k] = s[k].src;
    bit[k] = s[k].bit;
    out[k] = s[k].out;
  }
  uint64_t seen = 0;
  for (;;) {
    // Blocks every stream can take without a check: a block reads 8 bytes at its start
    // and takes at most 55 bits, and stores 8 bytes at most 30 values past its start.
    size_t blocks = SIZE_MAX;
    for (int k = 0; k < kHuffStreams; ++k) {
      const uint64_t bits = uint64_t(s[k].len) * 8;
      const size_t room = size_t(s[k].end - out[k]);
      if (bits < bit[k] + 64 || room < kBlockValues + 8) return put_back(s, bit, out, seen);
      blocks = std::min({blocks, size_t((bits - 64 - bit[k]) / kBlockBits) + 1,
                         (room - kBlockValues - 8) / kBlockValues + 1});
    }
    for (; blocks; --blocks) {
      uint64_t w[kHuffStreams];
      for (int k = 0; k < kHuffStreams; ++k)
        w[k] = load<uint64_t>(src[k] + (bit[k] >> 3)) >> (bit[k] & 7);
      for (int step = 0; step < 5; ++step) {  // 5 x 11 bits <= the 57 that w holds
        for (int k = 0; k < kHuffStreams; ++k) {
          const uint64_t e = multi[w[k] & kMask];
          const uint64_t values = e >> 8;
          std::memcpy(out[k], &values, 8);
          seen |= e;
          out[k] += e >> 56;
          bit[k] += e & 63;
          w[k] >>= e & 63;
        }
      }
    }
  }
}

// Up to 11 bits of s at its position, zeros past its end.
inline uint32_t peek_safe(const Stream& s) {
  const size_t at = size_t(s.bit >> 3);
  uint64_t v = 0;
  if (at < s.len) std::memcpy(&v, s.src + at, std::min<size_t>(8, s.len - at));
  return uint32_t(v >> (s.bit & 7)) & kMask;
}

}  // namespace

void huff_lengths(const uint64_t* count, uint8_t* len) {
  std::memset(len, 0, 256);
  int sym[256], m = 0;
  for (int s = 0; s < 256; ++s)
    if (count[s]) sym[m++] = s;
  if (m == 0) return;
  if (m == 1) {
    len[sym[0]] = 1;
    return;
  }
  // Huffman's code: the two lightest nodes merge, leaves sorted by count (then value),
  // merged nodes queued in the order they are made (their weights never decrease).
  std::stable_sort(sym, sym + m, [&](int a, int b) { return count[a] < count[b]; });
  uint64_t weight[512];
  int parent[512];
  for (int i = 0; i < m; ++i) weight[i] = count[sym[i]];
  int leaf = 0, node = m, next = m;  // next unmerged leaf, next unmerged node, next new
  auto take = [&]() {
    if (leaf < m && (node >= next || weight[leaf] <= weight[node])) return leaf++;
    return node++;
  };
  while (next < 2 * m - 1) {
    const int a = take(), b = take();
    weight[next] = weight[a] + weight[b];
    parent[a] = parent[b] = next;
    ++next;
  }
  int depth[512];
  depth[2 * m - 2] = 0;
  for (int i = 2 * m - 3; i >= 0; --i) depth[i] = depth[parent[i]] + 1;
  // At most kHuffMaxBits: the longer codes shortened, then the Kraft sum (in units of
  // 2^-kHuffMaxBits) brought back to 2^kHuffMaxBits by lengthening the codes that cost
  // least: the longest ones below the limit, the rarest first.
  uint64_t kraft = 0;
  for (int i = 0; i < m; ++i) {
    len[sym[i]] = uint8_t(std::min(depth[i], kHuffMaxBits));
    kraft += uint64_t(1) << (kHuffMaxBits - len[sym[i]]);
  }
  while (kraft > kTable) {
    int best = -1;
    for (int i = 0; i < m; ++i) {  // sym is rarest first
      const int l = len[sym[i]];
      if (l < kHuffMaxBits && (best < 0 || l > len[sym[best]])) best = i;
    }
    kraft -= uint64_t(1) << (kHuffMaxBits - len[sym[best]] - 1);
    ++len[sym[best]];
  }
  // Room left (the lengthening may overshoot): shorten the commonest codes that fit.
  for (int i = m - 1; i >= 0; --i) {
    uint8_t& l = len[sym[i]];
    while (l > 1 && kraft + (uint64_t(1) << (kHuffMaxBits - l)) <= kTable) {
      kraft += uint64_t(1) << (kHuffMaxBits - l);
      --l;
    }
  }
}

namespace {

// The code of data and the sizes it gives: what the estimate and the encoder share.
// The header holds the lengths of values lo..hi (f = lo, c - 1 = hi - lo) as nibbles
// (low first), then the stream lengths.
struct Plan {
  uint8_t len[256];
  int lo = 0, hi = 255;
  size_t head, bytes[kHuffStreams], total;
  Plan(const uint8_t* data, size_t n) {
    uint64_t seg[kHuffStreams][256], count[256] = {};
    counts_by_segment(data, n, seg);
    for (int k = 0; k < kHuffStreams; ++k)
      for (int s = 0; s < 256; ++s) count[s] += seg[k][s];
    huff_lengths(count, len);
    while (lo < 255 && !len[lo]) ++lo;
    while (hi > lo && !len[hi]) --hi;
    total = head = kFixed + size_t(hi - lo + 2) / 2;
    for (int k = 0; k < kHuffStreams; ++k) total += bytes[k] = stream_bytes(seg[k], len);
  }
};

}  // namespace

size_t huff_estimate(const uint8_t* data, size_t n) { return Plan(data, n).total; }

std::vector<uint8_t> huff_encode(const uint8_t* data, size_t n, size_t max_size) {
  const Plan plan(data, n);
  if (plan.total > max_size) return {};
  const uint8_t* const len = plan.len;
  const int lo = plan.lo, hi = plan.hi;
  const size_t head = plan.head, total = plan.total, *const bytes = plan.bytes;
  uint32_t rev[256] = {};
  canonical(len, rev);  // huff_lengths makes a prefix code
  std::vector<uint8_t> out(total + 8, 0);  // slack for the last 8-byte store
  out[0] = uint8_t(lo);
  out[1] = uint8_t(hi - lo);
  for (int s = lo; s <= hi; ++s) out[2 + (s - lo) / 2] |= uint8_t(len[s] << (4 * ((s - lo) & 1)));
  const size_t fixed_at = 2 + size_t(hi - lo + 2) / 2;
  for (int k = 0; k + 1 < kHuffStreams; ++k)
    store<uint32_t>(out.data() + fixed_at + 4 * k, uint32_t(bytes[k]));
  uint32_t code[256];  // the bit-reversed code, its length in bits 16..23
  for (int s = 0; s < 256; ++s) code[s] = rev[s] | uint32_t(len[s]) << 16;
  // Four codes at a time (at most 44 bits, over at most 7 left from before): the
  // accumulator goes out as 8 bytes and moves on by its whole bytes. A store may run
  // up to 8 bytes past the stream: into the next stream's room, written after it, or
  // the slack at the end.
  uint8_t* p = out.data() + head;
  for (int k = 0; k < kHuffStreams; ++k) {
    size_t b, e;
    segment(n, k, &b, &e);
    uint64_t acc = 0;
    uint32_t nbits = 0;
    uint8_t* q = p;
    auto put = [&](uint8_t v) {
      acc |= uint64_t(code[v] & 0xffff) << nbits;
      nbits += code[v] >> 16;
    };
    size_t i = b;
    for (; i + 4 <= e; i += 4) {
      put(data[i]);
      put(data[i + 1]);
      put(data[i + 2]);
      put(data[i + 3]);
      store<uint64_t>(q, acc);
      q += nbits >> 3;  // at most 6 bytes: acc keeps its last 0-7 bits
      acc >>= nbits & ~7u;
      nbits &= 7;
    }
    for (; i < e; ++i) put(data[i]);
    store<uint64_t>(q, acc);  // the last (at most 7 + 33) bits, zeros after them
    p += bytes[k];
  }
  out.resize(total);
  return out;
}

std::string huff_decode(const uint8_t* src, size_t len, uint8_t* out, size_t n) {
  if (n == 0) return len == 0 ? "" : "data where none was expected";
  if (len < 2) return "truncated header";
  const int lo = src[0], c = src[1] + 1;
  if (lo + c > 256) return "code lengths past value 255";
  const size_t head = kFixed + size_t(c + 1) / 2;
  if (len < head) return "truncated header";
  uint8_t lens[256] = {};
  for (int i = 0; i < c; ++i) {
    const uint8_t l = (src[2 + i / 2] >> (4 * (i & 1))) & 15;
    if (l > kHuffMaxBits) return "code length over 11";
    lens[lo + i] = l;
  }
  if (c % 2 && src[2 + c / 2] >> 4) return "bad code lengths";  // the unused nibble
  std::unique_ptr<DecTables> t(new DecTables);  // 20 KiB: not on the stack
  if (!build_tables(lens, *t)) return "code lengths do not make a prefix code";
  Stream s[kHuffStreams];
  size_t at = head;
  for (int k = 0; k < kHuffStreams; ++k) {
    size_t b, e;
    segment(n, k, &b, &e);
    size_t sl;
    if (k + 1 < kHuffStreams) {
      sl = load<uint32_t>(src + 2 + size_t(c + 1) / 2 + 4 * k);
      if (sl > len - at) return "truncated stream";
    } else {
      sl = len - at;
    }
    s[k] = Stream{src + at, sl, 0, out + b, out + e};
    at += sl;
  }
  if (decode_fast(s, t->multi) & kBadEntry) return "bad code in a stream";
  for (int k = 0; k < kHuffStreams; ++k) {
    Stream& x = s[k];
    while (x.out < x.end) {
      const uint32_t e = t->single[peek_safe(x)];
      const uint32_t l = e >> 8;
      if (l == 0) return "bad code in a stream";
      if (x.bit + l > uint64_t(x.len) * 8) return "truncated stream";
      *x.out++ = uint8_t(e);
      x.bit += l;
    }
    if ((x.bit + 7) / 8 != x.len) return "stream longer than its values";
    if (x.bit % 8 && x.src[x.len - 1] >> (x.bit % 8)) return "nonzero padding bits";
  }
  return "";
}

}  // namespace modelgit
