// What the bindings of the entropy-section coders (rANS, runs, Huffman) share: the
// checks of their arguments and the calls without the GIL.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bindings/core/pybuffer.hpp"

namespace modelgit::bindings {

// The coded bytes of `data_o` (non-empty, under 4 GiB) by encode(data, n, max) -> vector
// (empty: no section; max = the size limit, which an encoder may check before coding),
// or None where there is none or it is longer than max_size (< 0: no limit).
template <typename Encode>
py::object encode_section(py::object data_o, py::object max_size_o, Encode encode) {
  Buf data(data_o, "data");
  const long long max_size = int_arg(max_size_o, "max_size");
  const size_t n = data.size();
  if (n == 0) throw py::value_error("data: nothing to encode (empty buffer)");
  if (n > 0xffffffffull) throw py::value_error("data: over 4 GiB (a section length is a u32)");
  const size_t limit = max_size < 0 ? SIZE_MAX : size_t(max_size);
  std::vector<uint8_t> out;
  {
    py::gil_scoped_release nogil;
    out = encode(data.data(), n, limit);
  }
  if (out.empty() || out.size() > limit) return py::none();
  return py::bytes(reinterpret_cast<const char*>(out.data()), out.size());
}

// Decodes `stream_o` into exactly size bytes (a new bytearray, or out=) by
// decode(src, len, out, n) -> error ("" when valid); ValueError "<what>: <error>".
template <typename Decode>
py::object decode_section(py::object stream_o, py::object size_o, py::object out_o,
                          const char* what, Decode decode) {
  Buf stream(stream_o, "stream");
  const long long size = int_arg(size_o, "size");
  if (size < 0) throw py::value_error("size must be >= 0");
  OutBuf out(out_o, size_t(size));
  out.check_no_overlap(stream);
  std::string err;
  {
    py::gil_scoped_release nogil;
    err = decode(stream.data(), stream.size(), out.data(), size_t(size));
  }
  if (!err.empty()) throw py::value_error(std::string(what) + ": " + err);
  return out.result();
}

}  // namespace modelgit::bindings
