// Runs sections: see runs.hpp and FORMAT.md section 3.5.
#include "core/runs.hpp"

#include "core/common.hpp"
#include "core/rans.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

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

// Decodes the part at src[*pos..len) into exactly n bytes at out.
std::string get_part(const uint8_t* src, size_t len, size_t* pos, uint8_t* out, size_t n,
                     const char* what) {
  if (len - *pos < kPartHeader) return std::string("truncated ") + what + " part";
  const uint8_t method = src[*pos];
  const size_t stored = load<uint32_t>(src + *pos + 1);
  *pos += kPartHeader;
  if (len - *pos < stored) return std::string("truncated ") + what + " part";
  const uint8_t* body = src + *pos;
  *pos += stored;
  if (method == kPartRaw) {
    if (stored != n) return std::string("raw ") + what + " part has the wrong length";
    if (n) std::memcpy(out, body, n);
    return "";
  }
  if (method == kPartRans) {
    if (n == 0) return std::string("rANS ") + what + " part for no bytes";
    const std::string err = rans_decode(body, stored, out, n);
    return err.empty() ? err : std::string(what) + " part: " + err;
  }
  return std::string("unknown method ") + std::to_string(method) + " of the " + what + " part";
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
  thread_local std::vector<uint8_t> buf;
  if (buf.size() < nlit + nrun) buf.resize(nlit + nrun);
  uint8_t* const lits = buf.data();
  const uint8_t* const runs = lits + nlit;
  size_t pos = kHeader;
  std::string err = get_part(src, len, &pos, lits, nlit, "literal");
  if (err.empty()) err = get_part(src, len, &pos, lits + nlit, nrun, "run");
  if (!err.empty()) return err;
  if (pos != len) return "trailing bytes after the section";
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
