// Shared helpers for the fer-native addon. Every native/<group>.cc includes this header and defines
//   void Register_<group>(napi_env env, napi_value exports);
// which native/addon.cc calls. JS-callable functions are plain `napi_value fn(napi_env, const Args&)` that may
// throw (fer::JsError, dnnl::error, std::exception): SetFunction's trampoline turns any throw into a JS Error.
#pragma once

#include <node_api.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace fer {

struct JsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using Args = std::vector<napi_value>;
using Fn = napi_value (*)(napi_env env, const Args& args);

inline void Check(napi_env env, napi_status status, const char* what) {
  if (status != napi_ok) throw JsError(std::string("fer-native: N-API call failed: ") + what);
}

// The process-wide CPU engine, and one in-order stream per JS thread. Each worker thread (fer-parallel) that loads
// the addon gets its own stream, scratchpad and primitive caches (thread_local), so workers never share state.
inline dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}
inline dnnl::stream& Stream() {
  thread_local dnnl::stream stream(Engine());
  return stream;
}

// One growing scratchpad reused by every primitive (attr.set_scratchpad_mode(user)): a fresh per-call allocation of
// megabytes would go through mmap and page-fault on each step. Valid until the next ScratchpadMemory() call on
// this thread.
inline dnnl::memory ScratchpadMemory(const dnnl::memory::desc& desc);

// A 64-byte-aligned float buffer that only grows: for reordered weights and other per-shape temporaries kept in a
// primitive cache entry, so steady-state steps allocate nothing.
class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { std::free(data_); }
  void* Get(size_t bytes) {
    if (bytes > capacity_) {
      std::free(data_);
      capacity_ = (bytes + 63) / 64 * 64;
      data_ = std::aligned_alloc(64, capacity_);
      if (!data_) throw JsError("fer-native: out of memory (" + std::to_string(bytes) + " bytes)");
    }
    return data_;
  }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

inline dnnl::memory ScratchpadMemory(const dnnl::memory::desc& desc) {
  thread_local Buffer buffer;
  return dnnl::memory(desc, Engine(), buffer.Get(desc.get_size()));
}

// A Float32Array's data, zero-copy. `expected` (when >= 0) is the element count it must have.
inline float* F32(napi_env env, napi_value value, const char* name, int64_t expected = -1) {
  bool is_typed = false;
  Check(env, napi_is_typedarray(env, value, &is_typed), "napi_is_typedarray");
  if (!is_typed) throw JsError(std::string("fer-native: ") + name + " must be a Float32Array");
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  Check(env, napi_get_typedarray_info(env, value, &type, &length, &data, nullptr, nullptr), "typedarray_info");
  if (type != napi_float32_array) throw JsError(std::string("fer-native: ") + name + " must be a Float32Array");
  if (expected >= 0 && static_cast<int64_t>(length) != expected) {
    throw JsError(std::string("fer-native: ") + name + " has " + std::to_string(length) + " elements, expected " +
                  std::to_string(expected));
  }
  return static_cast<float*>(data);
}

inline int64_t Int(napi_env env, napi_value value, const char* name) {
  int64_t v = 0;
  if (napi_get_value_int64(env, value, &v) != napi_ok) throw JsError(std::string("fer-native: ") + name + " must be a number");
  return v;
}

inline double Num(napi_env env, napi_value value, const char* name) {
  double v = 0;
  if (napi_get_value_double(env, value, &v) != napi_ok) throw JsError(std::string("fer-native: ") + name + " must be a number");
  return v;
}

inline bool Bool(napi_env env, napi_value value, const char* name) {
  bool v = false;
  if (napi_get_value_bool(env, value, &v) != napi_ok) throw JsError(std::string("fer-native: ") + name + " must be a boolean");
  return v;
}

inline std::string Str(napi_env env, napi_value value, const char* name) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, nullptr, 0, &len) != napi_ok) {
    throw JsError(std::string("fer-native: ") + name + " must be a string");
  }
  std::string s(len, '\0');
  Check(env, napi_get_value_string_utf8(env, value, s.data(), len + 1, &len), "get_value_string");
  return s;
}

// A JS array of integers (a shape, strides, pads).
inline std::vector<int64_t> Dims(napi_env env, napi_value value, const char* name) {
  bool is_array = false;
  Check(env, napi_is_array(env, value, &is_array), "napi_is_array");
  if (!is_array) throw JsError(std::string("fer-native: ") + name + " must be an array of integers");
  uint32_t n = 0;
  Check(env, napi_get_array_length(env, value, &n), "array_length");
  std::vector<int64_t> dims(n);
  for (uint32_t i = 0; i < n; ++i) {
    napi_value e;
    Check(env, napi_get_element(env, value, i, &e), "get_element");
    dims[i] = Int(env, e, name);
  }
  return dims;
}

// A Float32Array, or null/undefined (optional inputs such as a bias): nullptr then.
inline float* OptionalF32(napi_env env, napi_value value, const char* name, int64_t expected = -1) {
  napi_valuetype type;
  Check(env, napi_typeof(env, value, &type), "napi_typeof");
  if (type == napi_null || type == napi_undefined) return nullptr;
  return F32(env, value, name, expected);
}

inline napi_value Undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

inline napi_value Number(napi_env env, double v) {
  napi_value n;
  napi_create_double(env, v, &n);
  return n;
}

inline napi_value String(napi_env env, const std::string& s) {
  napi_value v;
  napi_create_string_utf8(env, s.c_str(), s.size(), &v);
  return v;
}

inline napi_value Trampoline(napi_env env, napi_callback_info info) {
  size_t argc = 24;
  napi_value argv[24];
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, &data) != napi_ok) return nullptr;
  Fn fn = reinterpret_cast<Fn>(data);
  try {
    return fn(env, Args(argv, argv + argc));
  } catch (const dnnl::error& e) {
    napi_throw_error(env, nullptr, (std::string("fer-native: oneDNN error (status ") + std::to_string(e.status) +
                                    "): " + e.what())
                                       .c_str());
  } catch (const std::exception& e) {
    napi_throw_error(env, nullptr, e.what());
  }
  return nullptr;
}

inline void SetFunction(napi_env env, napi_value exports, const char* name, Fn fn) {
  napi_value f;
  Check(env, napi_create_function(env, name, NAPI_AUTO_LENGTH, Trampoline, reinterpret_cast<void*>(fn), &f),
        "create_function");
  Check(env, napi_set_named_property(env, exports, name, f), "set_named_property");
}

inline void ExpectArgs(const Args& args, size_t n, const char* fn) {
  if (args.size() < n) {
    throw JsError(std::string("fer-native: ") + fn + " expects " + std::to_string(n) + " arguments, got " +
                  std::to_string(args.size()));
  }
}

}  // namespace fer
