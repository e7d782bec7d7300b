// Bindings of the Huffman sections (core/huff.hpp).
#include "core/huff.hpp"

#include "bindings/core/sections.hpp"

namespace modelgit::bindings {

void register_huff(py::module_& m) {
  m.attr("HUFF_MAX_BITS") = kHuffMaxBits;
  m.def(
      "huff_encode",
      [](py::object data, py::object max_size) {
        return encode_section(data, max_size, [](const uint8_t* p, size_t n, size_t max) {
          return huff_encode(p, n, max);
        });
      },
      py::arg("data"), py::arg("max_size") = -1,
      "The Huffman section of data (non-empty, under 4 GiB): order-0 prefix codes of at "
      "most HUFF_MAX_BITS bits in four streams. None when it would be longer than "
      "max_size bytes (max_size < 0: no limit; checked before coding).");
  m.def(
      "huff_estimate",
      [](py::object data_o) -> size_t {
        Buf data(data_o, "data");
        if (data.size() == 0) return 0;
        py::gil_scoped_release nogil;
        return huff_estimate(data.data(), data.size());
      },
      py::arg("data"),
      "The exact length huff_encode(data) would have, from histograms (0 for no data).");
  m.def(
      "huff_decode",
      [](py::object stream, py::object size, py::object out) {
        return decode_section(stream, size, out, "huffman section", huff_decode);
      },
      py::arg("stream"), py::arg("size"), py::arg("out") = py::none(),
      "Decode a huff_encode section into exactly size bytes (a new bytearray, or out=). "
      "ValueError names what is wrong with an invalid section.");
}

}  // namespace modelgit::bindings
