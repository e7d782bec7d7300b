// Order-0 rANS (range asymmetric numeral systems): 32-bit states, 16-bit renormalization.
//
// With k = kRansScaleBits (12), M = 2^k, a value s of frequency f_s and start c_s (the
// sum of the frequencies of the values below s), and states x in [L, 2^16 L), L = 2^16:
//   encode:  x' = (x / f_s) * M + (x mod f_s) + c_s      (after emitting x's low 16 bits
//            and x >>= 16 when x >= 2^(32 - k) * f_s)
//   decode:  slot = x mod M, s = the value whose range [c_s, c_s + f_s) holds slot,
//            x = f_s * (x / M) + slot - c_s, then x = x * 2^16 + next word when x < L.
// kRansStates (16) states take the values round robin (value i uses state i mod 16), so
// a decoder has 16 independent dependency chains, one per lane of four 4 x u32 vectors.
// They share one stream of 16-bit words, written by the encoder back to front (values
// in reverse order) and read by the decoder in order: after the 16 values of a round,
// the states that fell below L take the next words in state order.
#include "core/rans.hpp"

#include "core/common.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define MODELGIT_RANS_SSE41 1
#include <immintrin.h>
#endif

namespace modelgit {
namespace {

constexpr uint32_t kL = 1u << 16;
constexpr uint32_t kTotal = 1u << kRansScaleBits;
constexpr uint32_t kMask = kTotal - 1;

inline void put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}
inline uint32_t get_u32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
inline void put_u16(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
}
inline uint32_t get_u16(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8; }

// Frequency table: for each byte value in order, a run of r >= 1 absent values is
// "0x00, r - 1"; a present value's frequency is LEB128 (its first byte is never 0).
void put_table(const uint32_t* freq, std::vector<uint8_t>& out) {
  for (int s = 0; s < 256;) {
    if (freq[s] == 0) {
      int r = 0;
      while (s + r < 256 && freq[s + r] == 0) ++r;
      out.push_back(0);
      out.push_back(uint8_t(r - 1));
      s += r;
    } else {
      uint32_t f = freq[s++];
      while (f >= 0x80) {
        out.push_back(uint8_t(f | 0x80));
        f >>= 7;
      }
      out.push_back(uint8_t(f));
    }
  }
}

size_t table_size(const uint32_t* freq) {
  std::vector<uint8_t> t;
  t.reserve(768);
  put_table(freq, t);
  return t.size();
}

// Reads the table at src[*pos..len); false if it is malformed.
bool get_table(const uint8_t* src, size_t len, size_t* pos, uint32_t* freq) {
  size_t p = *pos;
  uint64_t sum = 0;
  for (int s = 0; s < 256;) {
    if (p >= len) return false;
    if (src[p] == 0) {
      if (p + 1 >= len) return false;
      int r = int(src[p + 1]) + 1;
      if (s + r > 256) return false;
      for (int i = 0; i < r; ++i) freq[s++] = 0;
      p += 2;
    } else {
      uint32_t f = 0;
      for (int shift = 0;; shift += 7) {
        if (p >= len || shift > 7) return false;
        uint8_t b = src[p++];
        f |= uint32_t(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
      }
      if (f == 0 || f > kTotal) return false;
      freq[s++] = f;
      sum += f;
    }
  }
  *pos = p;
  return sum == kTotal;
}

// Encoder transition without a division: q = floor(x / f) is the high word of
// 2x * ceil(2^63 / f), exactly, since x * f < 2^63 (x < 2^32, f <= 2^12).
struct EncSym {
  uint64_t rcp;
  uint32_t freq, start;
};

inline uint64_t mulhi(uint64_t a, uint64_t b) {
#ifdef __SIZEOF_INT128__
  return uint64_t((unsigned __int128)a * b >> 64);
#else  // the high word from 32-bit halves
  const uint64_t al = a & 0xffffffffu, ah = a >> 32, bl = b & 0xffffffffu, bh = b >> 32;
  const uint64_t mid = (al * bl >> 32) + (ah * bl & 0xffffffffu) + (al * bh & 0xffffffffu);
  return ah * bh + (ah * bl >> 32) + (al * bh >> 32) + (mid >> 32);
#endif
}

// Renormalization emits at most one 16-bit word: when x >= 2^(32 - k) * f, i.e.
// x >> 20 >= f. Done without a branch (it is unpredictable), always writing below p,
// which is free.
inline uint32_t enc_put(uint32_t x, const EncSym& e, uint8_t*& p) {
  const uint32_t emit = uint32_t((x >> (32 - kRansScaleBits)) >= e.freq);
  put_u16(p - 2, x);
  p -= 2 * emit;
  x >>= 16 * emit;
  const uint32_t q = uint32_t(mulhi(uint64_t(x) << 1, e.rcp));
  return (q << kRansScaleBits) + (x - q * e.freq) + e.start;
}

#ifdef MODELGIT_RANS_SSE41
// The encoder's rounds, 16 values each, with the states in four vectors (vector 3
// first, as the portable loop codes state 15 first). Per vector: the lanes that emit
// a word put their low 16 bits, in lane order, right-aligned in 8 bytes stored at
// p - 8 (below p is free), and p moves down by 2 per word; then q = floor(x / f) in
// double precision (exact to within one: x < 2^32, f <= 2^12), corrected upward once.
struct EncTables {
  int32_t freq[256], start[256];
  double rcp[256];
};

struct EmitLut {
  alignas(16) uint8_t ctl[16][16];
  EmitLut() {
    for (int m = 0; m < 16; ++m) {
      std::memset(ctl[m], 0x80, 16);
      const int k = __builtin_popcount(unsigned(m));
      int w = 0;
      for (int lane = 0; lane < 4; ++lane) {
        if (m >> lane & 1) {
          ctl[m][8 - 2 * k + 2 * w] = uint8_t(4 * lane);
          ctl[m][8 - 2 * k + 2 * w + 1] = uint8_t(4 * lane + 1);
          ++w;
        }
      }
    }
  }
};
const EmitLut kEmit;

__attribute__((target("sse4.1,popcnt"))) inline __m128i enc4(__m128i x, const uint8_t* v,
                                                              const EncTables& t,
                                                              uint8_t*& p) {
  const __m128i f = _mm_setr_epi32(t.freq[v[0]], t.freq[v[1]], t.freq[v[2]], t.freq[v[3]]);
  const __m128i c = _mm_setr_epi32(t.start[v[0]], t.start[v[1]], t.start[v[2]], t.start[v[3]]);
  const __m128i one = _mm_set1_epi32(1), f1 = _mm_sub_epi32(f, one);
  const __m128i emit = _mm_cmpgt_epi32(_mm_srli_epi32(x, 32 - kRansScaleBits), f1);
  const int m = _mm_movemask_ps(_mm_castsi128_ps(emit));
  const __m128i ctl = _mm_load_si128(reinterpret_cast<const __m128i*>(kEmit.ctl[m]));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p - 8), _mm_shuffle_epi8(x, ctl));
  p -= 2 * __builtin_popcount(unsigned(m));
  x = _mm_blendv_epi8(x, _mm_srli_epi32(x, 16), emit);
  // x as doubles (unsigned: bias by 2^31 through the signed conversion)
  const __m128i xs = _mm_xor_si128(x, _mm_set1_epi32(int(0x80000000u)));
  const __m128d bias = _mm_set1_pd(2147483648.0);
  const __m128d xlo = _mm_add_pd(_mm_cvtepi32_pd(xs), bias);
  const __m128d xhi = _mm_add_pd(_mm_cvtepi32_pd(_mm_shuffle_epi32(xs, 0xEE)), bias);
  const __m128d qlo = _mm_floor_pd(_mm_mul_pd(xlo, _mm_setr_pd(t.rcp[v[0]], t.rcp[v[1]])));
  const __m128d qhi = _mm_floor_pd(_mm_mul_pd(xhi, _mm_setr_pd(t.rcp[v[2]], t.rcp[v[3]])));
  __m128i q = _mm_unpacklo_epi64(_mm_cvttpd_epi32(qlo), _mm_cvttpd_epi32(qhi));
  __m128i r = _mm_sub_epi32(x, _mm_mullo_epi32(q, f));
  const __m128i fix = _mm_cmpgt_epi32(r, f1);  // r >= f: q was one short
  q = _mm_sub_epi32(q, fix);
  r = _mm_sub_epi32(r, _mm_and_si128(fix, f));
  return _mm_add_epi32(_mm_add_epi32(_mm_slli_epi32(q, kRansScaleBits), r), c);
}

// Codes values [0, i) (i a multiple of 16) into the states x, writing below p.
__attribute__((target("sse4.1,popcnt"))) void encode_sse41(uint32_t* x, const uint8_t* data,
                                                            size_t i, const EncSym* sym,
                                                            uint8_t*& p) {
  EncTables t;
  for (int s = 0; s < 256; ++s) {
    t.freq[s] = int32_t(sym[s].freq);
    t.start[s] = int32_t(sym[s].start);
    t.rcp[s] = sym[s].freq ? 1.0 / double(sym[s].freq) : 0.0;
  }
  constexpr int V = kRansStates / 4;
  __m128i xs[V];
  for (int v = 0; v < V; ++v) xs[v] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + 4 * v));
  while (i) {
    i -= kRansStates;
    for (int v = V - 1; v >= 0; --v) xs[v] = enc4(xs[v], data + i + 4 * v, t, p);
  }
  for (int v = 0; v < V; ++v) _mm_storeu_si128(reinterpret_cast<__m128i*>(x + 4 * v), xs[v]);
}

bool have_sse41() {
  static const bool yes = [] {
    __builtin_cpu_init();  // a shared library may run before libgcc's own initializer
    return __builtin_cpu_supports("sse4.1") && __builtin_cpu_supports("popcnt");
  }();
  return yes;
}
#endif

// ---- decoder --------------------------------------------------------------------
//
// The table: per slot one word, f << 20 | (slot - c_s) << 8 | s, for the value s whose
// range holds the slot (f = f_s < 2^12: a value of frequency 2^12 is the only one, and
// its streams are decoded apart). A step is then e = t[x & (M - 1)], out = e & 0xff,
// x = (e >> 20) * (x >> k) + (e >> 8 & (M - 1)).
constexpr size_t kBlockWords = 2048;  // words per block of the SIMD loop (see decode_sse41)

struct DecBuffers {
  uint32_t t[kTotal];
  uint32_t e[kBlockWords];   // SIMD loop: table entries of a block's words
  uint16_t w[kBlockWords];   // SIMD loop: the block's words (zeros past the stream)
};

inline uint32_t dec_step(uint32_t x, uint32_t e) {
  return (e >> 20) * (x >> kRansScaleBits) + (e >> 8 & kMask);
}

// One round of the portable loop: 16 steps, then the states below L take the next
// words in state order, without a branch (which ones do is unpredictable). Reads at
// most 32 bytes at q.
inline void portable_round(uint32_t* MG_RESTRICT s, const uint32_t* MG_RESTRICT t,
                           const uint8_t*& q, uint8_t* MG_RESTRICT o) {
  for (int k = 0; k < kRansStates; ++k) {
    const uint32_t e = t[s[k] & kMask];
    o[k] = uint8_t(e);
    s[k] = dec_step(s[k], e);
  }
  for (int k = 0; k < kRansStates; ++k) {
    const uint32_t y = s[k], need = uint32_t(y < kL), m = 0u - need;
    s[k] = (y & ~m) | ((y << 16 | get_u16(q)) & m);
    q += 2 * need;
  }
}

// Whole rounds of the portable loop: every value below n - n % 16. The last words are
// copied into a zero-padded buffer so that the rounds run to the end; a stream that
// needs more words than it has sets *overrun.
size_t decode_portable(uint32_t* x, const uint32_t* t, const uint8_t*& p, const uint8_t* end,
                       uint8_t* out, size_t n, bool* overrun) {
  uint32_t s[kRansStates];
  std::memcpy(s, x, sizeof s);
  size_t i = 0;
  for (; i + kRansStates <= n && end - p >= 2 * kRansStates; i += kRansStates)
    portable_round(s, t, p, out + i);
  if (i + kRansStates <= n) {
    uint8_t pad[4 * kRansStates] = {};
    const size_t rem = size_t(end - p);  // < 32
    std::memcpy(pad, p, rem);
    const uint8_t* q = pad;
    for (; i + kRansStates <= n && size_t(q - pad) <= rem; i += kRansStates)
      portable_round(s, t, q, out + i);
    *overrun = size_t(q - pad) > rem;
    p = *overrun ? end : p + (q - pad);
  }
  std::memcpy(x, s, sizeof s);
  return i;
}

// Fills the block buffers with words [b0, b1) of a stream of nwords words at base (zeros
// past its end) and their table entries. (The words are copied even inside the stream:
// the loop ran 10-15% faster reading them from the buffer than from the stream.)
void fill_block(DecBuffers& b, const uint8_t* base, size_t nwords, size_t b0, size_t b1) {
  const size_t real = std::min(b1, nwords);
  for (size_t j = b0; j < real; ++j) {
    const uint32_t w = get_u16(base + 2 * j);
    b.w[j - b0] = uint16_t(w);
    b.e[j - b0] = b.t[w & kMask];
  }
  for (size_t j = real; j < b1; ++j) {
    b.w[j - b0] = 0;
    b.e[j - b0] = b.t[0];
  }
}

#ifdef MODELGIT_RANS_SSE41
// The SIMD loop: 16 values per round with the states in four 4 x u32 vectors. Its speed
// is set by the dependency chain of a state from one round to the next; two things
// keep that chain short:
//  * the table lookups go through general registers (two 64-bit extracts, four loads),
//    faster than a gather on the CPUs measured (docs/benchmarks_core.md);
//  * a state that takes a word has its next table entry ready: a block's words are
//    looked up in the table ahead (fill_block: e[j] = t[word j & (M - 1)], which is
//    the slot of the state after it takes word j), so the renormalization only moves
//    ready entries and words to their lanes (byte shuffles chosen by the lanes' mask)
//    and is off the chain of lookups.
// Words come from the block buffers, zero-padded past the stream so that the rounds
// run to the end; reading more words than the stream has sets *overrun.
struct SpreadLut {
  alignas(16) uint8_t entry[16][16];  // mask -> the k-th needing lane gets u32 k
  alignas(16) uint8_t word[16][16];   // mask -> the k-th needing lane gets u16 k, zero-extended
  SpreadLut() {
    for (int m = 0; m < 16; ++m) {
      int k = 0;
      for (int lane = 0; lane < 4; ++lane) {
        const bool take = m >> lane & 1;
        for (int b = 0; b < 4; ++b) entry[m][4 * lane + b] = take ? uint8_t(4 * k + b) : 0x80;
        word[m][4 * lane] = take ? uint8_t(2 * k) : 0x80;
        word[m][4 * lane + 1] = take ? uint8_t(2 * k + 1) : 0x80;
        word[m][4 * lane + 2] = word[m][4 * lane + 3] = 0x80;
        k += take;
      }
    }
  }
};
const SpreadLut kSpread;

__attribute__((target("sse4.1,popcnt"))) inline __m128i lookup4(__m128i slots,
                                                                 const uint32_t* t) {
#ifdef __x86_64__
  const uint64_t a = uint64_t(_mm_cvtsi128_si64(slots));
  const uint64_t b = uint64_t(_mm_extract_epi64(slots, 1));
  const __m128i v0 = _mm_cvtsi32_si128(int(t[uint32_t(a)]));
  const __m128i v1 = _mm_cvtsi32_si128(int(t[a >> 32]));
  const __m128i v2 = _mm_cvtsi32_si128(int(t[uint32_t(b)]));
  const __m128i v3 = _mm_cvtsi32_si128(int(t[b >> 32]));
  return _mm_unpacklo_epi64(_mm_unpacklo_epi32(v0, v1), _mm_unpacklo_epi32(v2, v3));
#else
  alignas(16) uint32_t s[4];
  _mm_store_si128(reinterpret_cast<__m128i*>(s), slots);
  return _mm_setr_epi32(int(t[s[0]]), int(t[s[1]]), int(t[s[2]]), int(t[s[3]]));
#endif
}

__attribute__((target("sse4.1,popcnt"))) size_t decode_sse41(uint32_t* x, DecBuffers& b,
                                                              const uint8_t*& p,
                                                              const uint8_t* end,
                                                              uint8_t* out, size_t n,
                                                              bool* overrun) {
  constexpr int V = kRansStates / 4;
  const uint32_t* const t = b.t;
  const __m128i m12 = _mm_set1_epi32(int(kMask)), low = _mm_set1_epi32(0xff);
  const __m128i zero = _mm_setzero_si128();
  __m128i xs[V], es[V];  // the states and their table entries
  for (int v = 0; v < V; ++v) {
    xs[v] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + 4 * v));
    es[v] = lookup4(_mm_and_si128(xs[v], m12), t);
  }
  const uint8_t* const base = p;
  const size_t nwords = size_t(end - p) / 2;
  size_t i = 0, w = 0;  // values decoded, words taken
  while (i + kRansStates <= n && w <= nwords) {
    // A block: words [b0, b1), zero-padded to 16 past the stream; a round takes at
    // most 16 words and reads 4 words and 4 entries at most 12 past w.
    const size_t b0 = w, b1 = std::min(w + kBlockWords, nwords + kRansStates);
    fill_block(b, base, nwords, b0, b1);
    size_t j = 0;  // words taken in this block
    for (; i + kRansStates <= n && j + kRansStates <= b1 - b0; i += kRansStates) {
      const __m128i lo01 = _mm_packus_epi32(_mm_and_si128(es[0], low), _mm_and_si128(es[1], low));
      const __m128i lo23 = _mm_packus_epi32(_mm_and_si128(es[2], low), _mm_and_si128(es[3], low));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm_packus_epi16(lo01, lo23));
      for (int v = 0; v < V; ++v) {
        const __m128i y = _mm_add_epi32(
            _mm_mullo_epi32(_mm_srli_epi32(es[v], 20), _mm_srli_epi32(xs[v], kRansScaleBits)),
            _mm_and_si128(_mm_srli_epi32(es[v], 8), m12));
        // y < L: its high 16 bits are zero (the sign bit of the lane says so)
        const __m128 need = _mm_castsi128_ps(_mm_cmpeq_epi16(y, zero));
        const int m = _mm_movemask_ps(need);
        const __m128i next = lookup4(_mm_and_si128(y, m12), t);
        const __m128i ready = _mm_shuffle_epi8(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.e + j)),
            _mm_load_si128(reinterpret_cast<const __m128i*>(kSpread.entry[m])));
        const __m128i words = _mm_shuffle_epi8(
            _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.w + j)),
            _mm_load_si128(reinterpret_cast<const __m128i*>(kSpread.word[m])));
        es[v] = _mm_castps_si128(
            _mm_blendv_ps(_mm_castsi128_ps(next), _mm_castsi128_ps(ready), need));
        xs[v] = _mm_castps_si128(_mm_blendv_ps(
            _mm_castsi128_ps(y), _mm_castsi128_ps(_mm_or_si128(_mm_slli_epi32(y, 16), words)),
            need));
        j += size_t(__builtin_popcount(unsigned(m)));
      }
    }
    w = b0 + j;
  }
  *overrun = w > nwords;
  p = *overrun ? end : base + 2 * w;
  for (int v = 0; v < V; ++v) _mm_storeu_si128(reinterpret_cast<__m128i*>(x + 4 * v), xs[v]);
  return i;
}
#endif

}  // namespace

RansModel rans_model(const uint8_t* data, size_t n) {
  RansModel m{};
  uint64_t count[256];
  byte_counts(data, n, count);
  int order[256], present = 0;
  for (int s = 0; s < 256; ++s)
    if (count[s]) order[present++] = s;
  // Round to the nearest share (at least 1), then settle the rounding error on the most
  // frequent values, one step each in turn, never taking a value below 1.
  int64_t sum = 0;
  for (int j = 0; j < present; ++j) {
    int s = order[j];
    uint64_t f = (count[s] * kTotal + n / 2) / n;
    m.freq[s] = uint32_t(std::max<uint64_t>(f, 1));
    sum += m.freq[s];
  }
  std::stable_sort(order, order + present, [&](int a, int b) { return count[a] > count[b]; });
  int64_t diff = int64_t(kTotal) - sum;
  while (diff != 0) {
    bool moved = false;
    for (int j = 0; j < present && diff != 0; ++j) {
      uint32_t& f = m.freq[order[j]];
      if (diff > 0) {
        ++f;
        --diff;
        moved = true;
      } else if (f > 1) {
        --f;
        ++diff;
        moved = true;
      }
    }
    if (!moved) break;  // cannot happen: at most 256 values share 2^12
  }
  // The size of the coded stream to within a few bytes: the cost of each value under
  // the normalized frequencies, plus the scale byte, the table and the final states.
  double bits = 0;
  for (int j = 0; j < present; ++j) {
    int s = order[j];
    bits += double(count[s]) * (kRansScaleBits - std::log2(double(m.freq[s])));
  }
  m.encoded_size = 1 + table_size(m.freq) + 4 * kRansStates + 2 * size_t(std::ceil(bits / 16));
  return m;
}

std::vector<uint8_t> rans_encode(const uint8_t* data, size_t n, const RansModel& model,
                                 bool simd) {
  EncSym sym[256];
  uint32_t start = 0;
  for (int s = 0; s < 256; ++s) {
    const uint32_t f = model.freq[s];
    sym[s].freq = f;
    sym[s].start = start;
    sym[s].rcp = f ? ((uint64_t(1) << 63) + f - 1) / f : 0;  // ceil(2^63 / f)
    start += f;
  }
  // At most one word per value, plus slack below the stream (the vector loop stores 8
  // bytes below p).
  const size_t cap = 2 * n + 16;
  std::unique_ptr<uint8_t[]> buf(new uint8_t[cap]);  // uninitialized
  uint8_t* const end = buf.get() + cap;
  uint8_t* p = end;
  uint32_t x[kRansStates];
  for (int k = 0; k < kRansStates; ++k) x[k] = kL;
  size_t i = n;
  while (i % kRansStates) {
    --i;
    x[i % kRansStates] = enc_put(x[i % kRansStates], sym[data[i]], p);
  }
#ifdef MODELGIT_RANS_SSE41
  if (simd && have_sse41()) {
    encode_sse41(x, data, i, sym, p);
    i = 0;
  }
#else
  (void)simd;
#endif
  while (i) {
    i -= kRansStates;
    for (int k = kRansStates - 1; k >= 0; --k) x[k] = enc_put(x[k], sym[data[i + k]], p);
  }
  std::vector<uint8_t> out;
  out.reserve(1 + 512 + 4 * kRansStates + size_t(end - p));
  out.push_back(uint8_t(kRansScaleBits));
  put_table(model.freq, out);
  const size_t at = out.size();
  out.resize(at + 4 * kRansStates);
  for (int k = 0; k < kRansStates; ++k) put_u32(out.data() + at + 4 * k, x[k]);
  out.insert(out.end(), p, end);
  return out;
}

const char* rans_decoder_name(RansDecoder d) {
  switch (d) {
    case RansDecoder::kPortable:
      return "portable";
    case RansDecoder::kSse41:
      return "sse4.1";
    default:
      return "auto";
  }
}

bool rans_decoder_supported(RansDecoder d) {
  switch (d) {
    case RansDecoder::kAuto:
    case RansDecoder::kPortable:
      return true;
    case RansDecoder::kSse41:
#ifdef MODELGIT_RANS_SSE41
      return have_sse41();
#else
      return false;
#endif
  }
  return false;
}

RansDecoder rans_best_decoder() {
  if (rans_decoder_supported(RansDecoder::kSse41)) return RansDecoder::kSse41;
  return RansDecoder::kPortable;
}

std::string rans_decode(const uint8_t* src, size_t len, uint8_t* out, size_t n,
                        RansDecoder decoder) {
  if (n == 0) return len == 0 ? "" : "data where none was expected";
  if (len < 1) return "empty stream";
  if (src[0] != kRansScaleBits) return "unsupported scale " + std::to_string(src[0]);
  size_t pos = 1;
  uint32_t freq[256];
  if (!get_table(src, len, &pos, freq)) return "bad frequency table";
  if (len - pos < 4 * kRansStates) return "truncated states";
  uint32_t x[kRansStates];
  for (int k = 0; k < kRansStates; ++k) {
    x[k] = get_u32(src + pos + 4 * k);
    if (x[k] < kL) return "bad initial state";
  }
  const uint8_t* p = src + pos + 4 * kRansStates;
  const uint8_t* const end = src + len;
  if ((end - p) % 2) return "stream is not whole 16-bit words";
  // A value of frequency M is the only one: every step leaves its state as it was (>= L,
  // so no word is read), and the decoder's table could not hold its frequency.
  for (int s = 0; s < 256; ++s) {
    if (freq[s] != kTotal) continue;
    std::memset(out, s, n);
    if (p != end) return "trailing bytes after the stream";
    for (int k = 0; k < kRansStates; ++k)
      if (x[k] != kL) return "final state mismatch (corrupt stream)";
    return "";
  }
  std::unique_ptr<DecBuffers> b(new DecBuffers);  // 28 KiB: not on the stack
  for (uint32_t s = 0, c = 0; s < 256; ++s) {
    for (uint32_t j = 0; j < freq[s]; ++j) b->t[c + j] = freq[s] << 20 | j << 8 | s;
    c += freq[s];
  }
  if (decoder == RansDecoder::kAuto || !rans_decoder_supported(decoder))
    decoder = rans_best_decoder();
  // Whole rounds; every read stays in bounds, even for a corrupt stream (after a step
  // x >= f * 2^(16 - k) >= 16, so one word restores x >= L).
  bool overrun = false;
  size_t i = 0;
#ifdef MODELGIT_RANS_SSE41
  if (decoder == RansDecoder::kSse41) i = decode_sse41(x, *b, p, end, out, n, &overrun);
#endif
  if (decoder == RansDecoder::kPortable) i = decode_portable(x, b->t, p, end, out, n, &overrun);
  if (overrun) return "truncated stream";
  for (; i < n; ++i) {  // the last n mod 16 values
    uint32_t& st = x[i % kRansStates];
    const uint32_t e = b->t[st & kMask];
    out[i] = uint8_t(e);
    st = dec_step(st, e);
    if (st < kL) {
      if (p == end) return "truncated stream";
      st = (st << 16) | get_u16(p);
      p += 2;
    }
  }
  if (p != end) return "trailing bytes after the stream";
  for (int k = 0; k < kRansStates; ++k)
    if (x[k] != kL) return "final state mismatch (corrupt stream)";
  return "";
}

}  // namespace modelgit
