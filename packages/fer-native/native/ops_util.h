// Shared helpers of the element-wise, reduction, pooling, batch-norm and layout kernels (eltwise.cc, reduce.cc,
// pool.cc, batchnorm.cc, layout.cc). Every kernel reads JS typed arrays in place and writes into an output typed array
// that the JS side allocated, so tensor memory stays owned by the cpu backend's data map.
//
// Exactness: these kernels reproduce tfjs-backend-cpu's results bit for bit where its JS arithmetic allows it:
// float32 +, -, *, / and sqrt equal JS double arithmetic rounded to float32; JS reductions accumulate in double in a
// fixed order, so ours do too, in the same order. Threads split work by output elements only (static partition), so
// every result is independent of the thread count.
#pragma once

#include <node_api.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace ferops {

// Below this many elements a kernel runs on the calling thread: a parallel region costs a few microseconds.
constexpr int64_t kParallelMin = 1 << 15;

inline int threadsFor(int64_t work) { return work >= kParallelMin ? omp_get_max_threads() : 1; }

struct Error {
  std::string msg;
};

inline void check(napi_env env, napi_status s, const char* what) {
  if (s != napi_ok) throw Error{std::string("fer-native ops: ") + what};
}

template <typename T>
struct View {
  T* data = nullptr;
  int64_t size = 0;
};

template <typename T>
constexpr napi_typedarray_type arrayType();
template <>
constexpr napi_typedarray_type arrayType<float>() {
  return napi_float32_array;
}
template <>
constexpr napi_typedarray_type arrayType<int32_t>() {
  return napi_int32_array;
}
template <>
constexpr napi_typedarray_type arrayType<uint8_t>() {
  return napi_uint8_array;
}

template <typename T>
View<T> typed(napi_env env, napi_value v, const char* name) {
  napi_typedarray_type t;
  size_t len = 0;
  void* data = nullptr;
  napi_value ab;
  size_t off = 0;
  bool is = false;
  check(env, napi_is_typedarray(env, v, &is), name);
  if (!is) throw Error{std::string("fer-native ops: expected a typed array for ") + name};
  check(env, napi_get_typedarray_info(env, v, &t, &len, &data, &ab, &off), name);
  if (t != arrayType<T>()) throw Error{std::string("fer-native ops: wrong typed array type for ") + name};
  return View<T>{static_cast<T*>(data), static_cast<int64_t>(len)};
}

// An optional argument (N-API passes `undefined` for missing ones): a typed array, or an empty view for
// undefined/null.
template <typename T>
View<T> optionalTyped(napi_env env, napi_value v, const char* name) {
  napi_valuetype t;
  check(env, napi_typeof(env, v, &t), name);
  if (t == napi_undefined || t == napi_null) return View<T>{};
  return typed<T>(env, v, name);
}

// An optional boolean argument: false when undefined.
inline bool optionalFlag(napi_env env, napi_value v, const char* name) {
  napi_valuetype t;
  check(env, napi_typeof(env, v, &t), name);
  if (t == napi_undefined || t == napi_null) return false;
  bool b = false;
  check(env, napi_get_value_bool(env, v, &b), name);
  return b;
}

inline int64_t integer(napi_env env, napi_value v, const char* name) {
  int64_t x = 0;
  check(env, napi_get_value_int64(env, v, &x), name);
  return x;
}

inline double number(napi_env env, napi_value v, const char* name) {
  double x = 0;
  check(env, napi_get_value_double(env, v, &x), name);
  return x;
}

inline std::vector<int64_t> ints(napi_env env, napi_value v, const char* name) {
  uint32_t n = 0;
  check(env, napi_get_array_length(env, v, &n), name);
  std::vector<int64_t> out(n);
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    check(env, napi_get_element(env, v, i, &e), name);
    out[i] = integer(env, e, name);
  }
  return out;
}

inline int64_t product(const std::vector<int64_t>& s) {
  int64_t p = 1;
  for (int64_t d : s) p *= d;
  return p;
}

// Arguments of a JS call, with the N-API boilerplate and C++ errors turned into JS exceptions.
template <typename F>
napi_value entry(napi_env env, napi_callback_info info, size_t want, F&& body) {
  size_t argc = 16;
  napi_value argv[16];
  try {
    check(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr), "arguments");
    if (argc < want) throw Error{"fer-native ops: expected " + std::to_string(want) + " arguments, got " + std::to_string(argc)};
    body(argv);
  } catch (const Error& e) {
    napi_throw_error(env, nullptr, e.msg.c_str());
  }
  return nullptr;
}

inline void exportFn(napi_env env, napi_value exports, const char* name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, nullptr, &fn);
  napi_set_named_property(env, exports, name, fn);
}

// Splits [0, n) into `parts` contiguous static chunks; chunk t is [lo, hi).
inline void chunk(int64_t n, int parts, int t, int64_t& lo, int64_t& hi) {
  const int64_t q = n / parts, r = n % parts;
  lo = t * q + (t < r ? t : r);
  hi = lo + q + (t < r ? 1 : 0);
}

// Runs f(lo, hi) over static chunks of [0, n) on `threads` threads (work decides whether to go parallel).
template <typename F>
void parallelFor(int64_t n, int64_t work, F&& f) {
  const int nt = static_cast<int>(std::min<int64_t>(threadsFor(work), n > 0 ? n : 1));
  if (nt <= 1) {
    f(int64_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    int64_t lo, hi;
    chunk(n, omp_get_num_threads(), omp_get_thread_num(), lo, hi);
    if (hi > lo) f(lo, hi);
  }
}

}  // namespace ferops
