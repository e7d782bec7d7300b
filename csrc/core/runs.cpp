// Runs sections: see runs.hpp and FORMAT.md section 3.5.
#include "core/runs.hpp"

#include "core/common.hpp"
#include "core/rans.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

namespace modelgit {
namespace {

constexpr uint8_t kPartRaw = 0, kPartRans = 2;  // the section methods a part may use
constexpr size_t kHeader = 10;                   // value, escape, L, R
constexpr size_t kPartHeader = 5;                // method, stored length
constexpr size_t kRansMin = 256;                 // below this a table outweighs any gain
// Escapes the writer tries. A smaller one makes a smaller alphabet (a shorter frequency
// table: on a plane of 150k values it can outweigh the gain over rANS) but more run
// bytes, and a run of several bytes costs the decoder a mispredicted branch: a smaller
// escape is only taken while the runs average at most 1.25 bytes.
constexpr uint8_t kEscapes[] = {255, 127, 63};

// The size of a part of these bytes, about.
size_t part_estimate(const std::vector<uint8_t>& data) {
  size_t size = data.size();
  if (size >= kRansMin) size = std::min(size, rans_model(data.data(), size).encoded_size);
  return kPartHeader + size;
}

// A part: rANS when that is smaller than the bytes, else raw.
void put_part(const std::vector<uint8_t>& data, std::vector<uint8_t>& out) {
  std::vector<uint8_t> coded;
  if (data.size() >= kRansMin) {
    const RansModel model = rans_model(data.data(), data.size());
    if (model.encoded_size < data.size()) coded = rans_encode(data.data(), data.size(), model);
  }
  const bool rans = !coded.empty() && coded.size() < data.size();
  const std::vector<uint8_t>& body = rans ? coded : data;
  const size_t at = out.size();
  out.resize(at + kPartHeader);
  out[at] = rans ? kPartRans : kPartRaw;
  store<uint32_t>(out.data() + at + 1, uint32_t(body.size()));
  out.insert(out.end(), body.begin(), body.end());
}

// A part as read from its header: checked before anything is allocated for it.
struct Part {
  uint8_t method;
  const uint8_t* body;
  size_t stored;  // bytes of body
  size_t n;       // bytes it decodes to
};

// Reads the header of the part at src[*pos..len), which must decode to n bytes.
std::string read_part(const uint8_t* src, size_t len, size_t* pos, size_t n, const char* what,
                      Part* part) {
  if (len - *pos < kPartHeader) return std::string("truncated ") + what + " part";
  *part = Part{src[*pos], nullptr, load<uint32_t>(src + *pos + 1), n};
  *pos += kPartHeader;
  if (len - *pos < part->stored) return std::string("truncated ") + what + " part";
  part->body = src + *pos;
  *pos += part->stored;
  if (part->method == kPartRaw && part->stored != n)
    return std::string("raw ") + what + " part has the wrong length";
  if (part->method == kPartRans && n == 0)
    return std::string("rANS ") + what + " part for no bytes";
  if (part->method != kPartRaw && part->method != kPartRans)
    return std::string("unknown method ") + std::to_string(part->method) + " of the " + what +
           " part";
  return "";
}

// Decodes a part read by read_part into its n bytes at out.
std::string decode_part(const Part& part, uint8_t* out, const char* what) {
  if (part.method == kPartRaw) {
    if (part.n) std::memcpy(out, part.body, part.n);
    return "";
  }
  const std::string err = rans_decode(part.body, part.stored, out, part.n);
  return err.empty() ? err : std::string(what) + " part: " + err;
}

// The run bytes of these run lengths with escape e.
std::vector<uint8_t> run_bytes(const std::vector<uint32_t>& lengths, uint8_t e) {
  std::vector<uint8_t> out;
  size_t total = 0;
  for (uint32_t r : lengths) total += r / e + 1;
  out.reserve(total);
  for (uint32_t r : lengths) {
    out.insert(out.end(), r / e, e);
    out.push_back(uint8_t(r % e));
  }
  return out;
}

}  // namespace

std::vector<uint8_t> runs_encode(const uint8_t* data, size_t n) {
  if (n == 0 || n > 0xffffffffu) return {};
  // A look at 4,096 bytes spread over the data first (most planes are not dominated):
  // a value that makes up 3/4 of the data holds far more than 5/8 of such a sample,
  // unless its places line up with the stride (then this only misses a section).
  constexpr size_t kLook = 4096;
  if (n >= 16 * kLook) {
    uint32_t c[256] = {};
    const size_t step = n / kLook;
    for (size_t i = 0; i < kLook; ++i) ++c[data[i * step]];
    if (*std::max_element(c, c + 256) * 8 < 5 * kLook) return {};
  }
  uint64_t count[256];
  byte_counts(data, n, count);
  const int v = int(std::max_element(count, count + 256) - count);
  if (count[v] * 256 < size_t(kRunsMinShare256) * n) return {};
  std::vector<uint8_t> lits;
  std::vector<uint32_t> lengths;
  lits.reserve(n - count[v]);
  lengths.reserve(n - count[v] + 1);
  const uint64_t word = 0x0101010101010101ull * uint8_t(v);
  size_t r = 0;
  for (size_t i = 0; i < n;) {
    uint64_t w;
    if (i + 8 <= n && (std::memcpy(&w, data + i, 8), w == word)) {  // eight of the value
      r += 8;
      i += 8;
      continue;
    }
    if (data[i] == v) {
      ++r;
    } else {
      lengths.push_back(uint32_t(r));
      lits.push_back(data[i]);
      r = 0;
    }
    ++i;
  }
  lengths.push_back(uint32_t(r));
  // The escape whose run bytes code smallest (none for all the value: R = 0).
  std::vector<uint8_t> runs;
  uint8_t escape = 255;
  if (!lits.empty()) {
    size_t best = SIZE_MAX;
    for (uint8_t e : kEscapes) {
      std::vector<uint8_t> b = run_bytes(lengths, e);
      if (e != kEscapes[0] && 4 * b.size() > 5 * lengths.size()) break;
      const size_t size = part_estimate(b);
      if (size < best) {
        best = size;
        escape = e;
        runs.swap(b);
      }
    }
  }
  std::vector<uint8_t> out(kHeader);
  out[0] = uint8_t(v);
  out[1] = escape;
  store<uint32_t>(out.data() + 2, uint32_t(lits.size()));
  store<uint32_t>(out.data() + 6, uint32_t(runs.size()));
  put_part(lits, out);
  put_part(runs, out);
  return out;
}

std::string runs_decode(const uint8_t* src, size_t len, uint8_t* out, size_t n) {
  if (n == 0) return len == 0 ? "" : "data where none was expected";
  if (len < kHeader) return "truncated header";
  const uint8_t v = src[0], e = src[1];
  if (e == 0) return "escape 0";
  const size_t nlit = load<uint32_t>(src + 2), nrun = load<uint32_t>(src + 6);
  // Each of the nlit + 1 runs takes one byte, and a byte e stands for e values; no run
  // bytes (and no literals) stand for n copies of the value.
  if (nlit > n || (nrun < nlit + 1 && nrun + nlit) || nrun > nlit + 1 + (n - nlit) / e)
    return "literal and run counts do not fit the length";
  Part lit_part, run_part;
  size_t pos = kHeader;
  std::string err = read_part(src, len, &pos, nlit, "literal", &lit_part);
  if (err.empty()) err = read_part(src, len, &pos, nrun, "run", &run_part);
  if (!err.empty()) return err;
  if (pos != len) return "trailing bytes after the section";
  // The parts' bytes: a buffer each thread keeps for a plane's worth (they are a few
  // percent of it), a fresh one freed at return for more (at most about 2n bytes, as
  // the counts are checked: a hostile section cannot pin memory).
  constexpr size_t kKeep = size_t(1) << 20;
  thread_local std::vector<uint8_t> kept;
  std::unique_ptr<uint8_t[]> fresh;
  uint8_t* lits;
  if (nlit + nrun <= kKeep) {
    if (kept.size() < nlit + nrun) kept.resize(nlit + nrun);
    lits = kept.data();
  } else {
    fresh.reset(new uint8_t[nlit + nrun]);
    lits = fresh.get();
  }
  const uint8_t* const runs = lits + nlit;
  err = decode_part(lit_part, lits, "literal");
  if (err.empty()) err = decode_part(run_part, lits + nlit, "run");
  if (!err.empty()) return err;
  std::memset(out, v, n);
  if (nrun == 0) return "";  // all the value
  size_t at = 0, k = 0;  // output bytes, run bytes taken
  for (size_t i = 0;; ++i) {
    size_t r = 0;
    uint8_t b;
    do {
      if (k == nrun) return "runs end early";
      b = runs[k++];
      r += b;
    } while (b == e);
    if (b > e) return "run byte over the escape";
    at += r;
    if (i == nlit) break;  // the final run
    if (at >= n) return "runs do not add up to the length";
    out[at++] = lits[i];
  }
  if (at != n) return "runs do not add up to the length";
  if (k != nrun) return "trailing run bytes";
  return "";
}

}  // namespace modelgit
