// Bindings of the runs sections (core/runs.hpp).
#include "core/runs.hpp"

#include "bindings/core/sections.hpp"

namespace modelgit::bindings {

void register_runs(py::module_& m) {
  m.attr("RUNS_MIN_SHARE") = double(kRunsMinShare256) / 256.0;
  m.def(
      "runs_encode",
      [](py::object data, py::object max_size) {
        return encode_section(data, max_size, [](const uint8_t* p, size_t n, size_t) {
          return runs_encode(p, n);  // its size is known only once coded
        });
      },
      py::arg("data"), py::arg("max_size") = -1,
      "The runs section of data (non-empty): its most frequent byte value, the other "
      "bytes (literals) and the lengths of the value's runs between them, each part rANS "
      "coded or raw. None when no value holds RUNS_MIN_SHARE of the bytes, or when the "
      "section would be longer than max_size bytes (max_size < 0: no limit).");
  m.def(
      "runs_decode",
      [](py::object stream, py::object size, py::object out) {
        return decode_section(stream, size, out, "runs section", runs_decode);
      },
      py::arg("stream"), py::arg("size"), py::arg("out") = py::none(),
      "Decode a runs_encode section into exactly size bytes (a new bytearray, or out=). "
      "ValueError names what is wrong with an invalid section.");
}

}  // namespace modelgit::bindings
