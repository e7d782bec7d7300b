// Python-side helpers of the bindings: buffer acquisition (zero-copy, C-contiguous),
// output allocation / `out=` validation, integer parameters. Every error is a
// ValueError (TypeError only for objects that are not buffers or not integers). The
// checks of the parameters themselves (shared with modelgit._cuda) are in
// core/params.hpp.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "core/common.hpp"
#include "core/params.hpp"

namespace modelgit::bindings {
namespace py = pybind11;

// A zero-copy view of a Python buffer; released by the destructor (GIL must be held).
class Buf {
 public:
  Buf() = default;
  Buf(py::handle obj, const char* name, bool writable = false) { acquire(obj, name, writable); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  ~Buf() {
    if (held_) PyBuffer_Release(&view_);
  }

  void acquire(py::handle obj, const char* name, bool writable) {
    int flags = PyBUF_STRIDES | (writable ? PyBUF_WRITABLE : 0);
    if (!PyObject_CheckBuffer(obj.ptr())) {
      throw py::type_error(std::string(name) + ": expected a bytes-like object (buffer protocol), got " +
                           std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
    }
    if (PyObject_GetBuffer(obj.ptr(), &view_, flags) != 0) {
      PyErr_Clear();
      if (writable) throw py::value_error(std::string(name) + ": buffer must be writable");
      throw py::value_error(std::string(name) + ": cannot get a buffer from this object");
    }
    held_ = true;
    if (!PyBuffer_IsContiguous(&view_, 'C')) {
      PyBuffer_Release(&view_);
      held_ = false;
      throw py::value_error(std::string(name) +
                            ": buffer is not C-contiguous (a strided memoryview slice or a "
                            "non-contiguous array); pass a contiguous copy");
    }
    if (view_.len < 0) {
      PyBuffer_Release(&view_);
      held_ = false;
      throw py::value_error(std::string(name) + ": invalid buffer length");
    }
  }
  bool held() const { return held_; }
  const uint8_t* data() const { return static_cast<const uint8_t*>(view_.buf); }
  uint8_t* wdata() const { return static_cast<uint8_t*>(view_.buf); }
  size_t size() const { return held_ ? size_t(view_.len) : 0; }

 private:
  Py_buffer view_{};
  bool held_ = false;
};

inline bool overlaps(const uint8_t* a, size_t na, const uint8_t* b, size_t nb) {
  if (na == 0 || nb == 0) return false;
  auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return pa < pb + nb && pb < pa + na;
}

// The result buffer: a new bytearray, or the caller's `out=` (validated for size,
// writability, contiguity and overlap with the inputs).
class OutBuf {
 public:
  OutBuf(py::handle out, size_t n, const char* name = "out") {
    if (out.is_none()) {
      PyObject* ba = PyByteArray_FromStringAndSize(nullptr, Py_ssize_t(n));
      if (!ba) throw py::error_already_set();
      obj_ = py::reinterpret_steal<py::object>(ba);
      ptr_ = reinterpret_cast<uint8_t*>(PyByteArray_AS_STRING(ba));
    } else {
      buf_.acquire(out, name, true);
      if (buf_.size() != n) {
        throw py::value_error(std::string(name) + ": buffer has " + std::to_string(buf_.size()) +
                              " bytes, expected exactly " + std::to_string(n));
      }
      obj_ = py::reinterpret_borrow<py::object>(out);
      ptr_ = buf_.wdata();
    }
    n_ = n;
  }
  void check_no_overlap(const Buf& in, const char* name = "out") const {
    if (in.held() && overlaps(ptr_, n_, in.data(), in.size()))
      throw py::value_error(std::string(name) + " must not overlap an input buffer");
  }
  uint8_t* data() const { return ptr_; }
  py::object result() const { return obj_; }

 private:
  Buf buf_;
  py::object obj_;
  uint8_t* ptr_ = nullptr;
  size_t n_ = 0;
};

inline py::bytearray new_bytearray(const void* src, size_t n) {
  PyObject* ba = PyByteArray_FromStringAndSize(nullptr, Py_ssize_t(n));
  if (!ba) throw py::error_already_set();
  if (n) std::memcpy(PyByteArray_AS_STRING(ba), src, n);
  return py::reinterpret_steal<py::bytearray>(ba);
}

inline py::bytearray empty_bytearray(size_t n, uint8_t** ptr) {
  PyObject* ba = PyByteArray_FromStringAndSize(nullptr, Py_ssize_t(n));
  if (!ba) throw py::error_already_set();
  *ptr = reinterpret_cast<uint8_t*>(PyByteArray_AS_STRING(ba));
  return py::reinterpret_steal<py::bytearray>(ba);
}

// A Python int parameter as int64 (TypeError if not an int, ValueError if out of range).
inline long long int_arg(py::handle obj, const char* name) {
  if (!PyLong_Check(obj.ptr()) && !PyIndex_Check(obj.ptr()))
    throw py::type_error(std::string(name) + ": expected an int");
  py::object idx = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
  if (!idx) throw py::error_already_set();
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(idx.ptr(), &overflow);
  if (overflow || (v == -1 && PyErr_Occurred())) {
    PyErr_Clear();
    throw py::value_error(std::string(name) + ": integer out of range");
  }
  return v;
}

// An elem_size parameter: an int, and 1, 2, 4 or 8.
inline long long elem_size_arg(py::handle obj) {
  const long long e = int_arg(obj, "elem_size");
  check_elem_size(e);
  return e;
}

// ValueError unless buffer `name` holds as many bytes as `other` (the two are read in step).
inline void check_same_length(size_t got, size_t want, const char* name, const char* other) {
  if (got != want)
    throw py::value_error(std::string(name) + ": " + std::to_string(got) + " bytes, " + other +
                          " has " + std::to_string(want) + " (they must be equal)");
}

inline int threads_arg(py::handle obj) {
  long long t = int_arg(obj, "threads");
  if (t < 0) throw py::value_error("threads must be >= 0 (0 = all hardware threads)");
  return int(std::min<long long>(t, kMaxThreads));
}

}  // namespace modelgit::bindings
