// Data movement without arithmetic (Tile, Transpose, Concat, PadV2, Slice, SplitV), as one multi-threaded strided copy of 4-byte
// elements (float32 or int32 bits, so results are exact). tfjs-backend-cpu runs these as per-element index
// arithmetic in JS (Tile: indexToLoc + modulo per element), which the models hit on full-size feature maps (the
// broadcasts inside the Sum/Mean gradients).
#include "ops_util.h"

namespace ferops {
namespace {

// A 4-byte-element typed array (Float32Array or Int32Array) as raw bits.
View<uint32_t> raw32(napi_env env, napi_value v, const char* name) {
  napi_typedarray_type t;
  size_t len = 0;
  void* data = nullptr;
  bool is = false;
  check(env, napi_is_typedarray(env, v, &is), name);
  if (!is) throw Error{std::string("fer-native ops: expected a typed array for ") + name};
  check(env, napi_get_typedarray_info(env, v, &t, &len, &data, nullptr, nullptr), name);
  if (t != napi_float32_array && t != napi_int32_array)
    throw Error{std::string("fer-native ops: expected a Float32Array or Int32Array for ") + name};
  return View<uint32_t>{static_cast<uint32_t*>(data), static_cast<int64_t>(len)};
}

// dst[dOff + Σ i_k·ds_k] = src[sOff + Σ i_k·ss_k] over `shape`. Size-1 dims dropped, mergeable neighbours merged.
void stridedCopy(std::vector<int64_t> shape, std::vector<int64_t> ss, std::vector<int64_t> ds, const uint32_t* src,
                 int64_t sOff, uint32_t* dst, int64_t dOff) {
  std::vector<int64_t> d, s, t;
  for (size_t i = 0; i < shape.size(); i++) {
    if (shape[i] == 1) continue;
    if (!d.empty() && s.back() == ss[i] * shape[i] && t.back() == ds[i] * shape[i]) {
      d.back() *= shape[i];
      s.back() = ss[i];
      t.back() = ds[i];
    } else {
      d.push_back(shape[i]);
      s.push_back(ss[i]);
      t.push_back(ds[i]);
    }
  }
  if (d.empty()) {
    d = {1};
    s = {0};
    t = {1};
  }
  const int r = static_cast<int>(d.size());
  const int64_t inner = d[r - 1], is = s[r - 1], it = t[r - 1];
  int64_t rows = 1;
  for (int i = 0; i < r - 1; i++) rows *= d[i];
  parallelFor(rows, rows * inner, [&](int64_t lo, int64_t hi) {
    std::vector<int64_t> coord(r, 0);
    int64_t rem = lo, so = sOff, to = dOff;
    for (int i = r - 2; i >= 0; i--) {
      coord[i] = rem % d[i];
      rem /= d[i];
      so += coord[i] * s[i];
      to += coord[i] * t[i];
    }
    for (int64_t row = lo; row < hi; row++) {
      const uint32_t* a = src + so;
      uint32_t* b = dst + to;
      if (is == 1 && it == 1) {
        std::memcpy(b, a, inner * 4);
      } else if (is == 0 && it == 1) {
        const uint32_t v = a[0];
        for (int64_t j = 0; j < inner; j++) b[j] = v;
      } else {
        for (int64_t j = 0; j < inner; j++) b[j * it] = a[j * is];
      }
      for (int i = r - 2; i >= 0; i--) {
        coord[i]++;
        so += s[i];
        to += t[i];
        if (coord[i] < d[i]) break;
        so -= coord[i] * s[i];
        to -= coord[i] * t[i];
        coord[i] = 0;
      }
    }
  });
}

std::vector<int64_t> contiguous(const std::vector<int64_t>& shape) {
  std::vector<int64_t> st(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; i--) st[i] = st[i + 1] * shape[i + 1];
  return st;
}

// tile(x, shape, reps, out): out = x repeated reps[k] times along each dim k.
napi_value Tile(napi_env env, napi_callback_info info) {
  return entry(env, info, 4, [&](napi_value* argv) {
    auto x = raw32(env, argv[0], "x");
    auto shape = ints(env, argv[1], "shape");
    auto reps = ints(env, argv[2], "reps");
    auto o = raw32(env, argv[3], "out");
    if (reps.size() != shape.size() || product(shape) != x.size) throw Error{"fer-native tile: bad shape or reps"};
    // out index along dim k = rep·x_k + j: the copy over [reps0, x0, reps1, x1, ...] with strides [0, xs0, 0, ...].
    auto xs = contiguous(shape);
    std::vector<int64_t> dims, ss;
    for (size_t k = 0; k < shape.size(); k++) {
      dims.push_back(reps[k]);
      ss.push_back(0);
      dims.push_back(shape[k]);
      ss.push_back(xs[k]);
    }
    if (product(dims) != o.size) throw Error{"fer-native tile: out has the wrong size"};
    stridedCopy(dims, ss, contiguous(dims), x.data, 0, o.data, 0);
  });
}

// transpose(x, shape, perm, out)
napi_value Transpose(napi_env env, napi_callback_info info) {
  return entry(env, info, 4, [&](napi_value* argv) {
    auto x = raw32(env, argv[0], "x");
    auto shape = ints(env, argv[1], "shape");
    auto perm = ints(env, argv[2], "perm");
    auto o = raw32(env, argv[3], "out");
    if (perm.size() != shape.size() || product(shape) != x.size || o.size != x.size)
      throw Error{"fer-native transpose: bad shape or perm"};
    auto xs = contiguous(shape);
    std::vector<int64_t> dims(perm.size()), ss(perm.size());
    for (size_t k = 0; k < perm.size(); k++) {
      if (perm[k] < 0 || perm[k] >= static_cast<int64_t>(shape.size())) throw Error{"fer-native transpose: bad perm"};
      dims[k] = shape[perm[k]];
      ss[k] = xs[perm[k]];
    }
    stridedCopy(dims, ss, contiguous(dims), x.data, 0, o.data, 0);
  });
}

// concat2d(inputs[], innerSizes[], outer, out): row r of out = row r of each input in turn.
napi_value Concat2d(napi_env env, napi_callback_info info) {
  return entry(env, info, 4, [&](napi_value* argv) {
    uint32_t k = 0;
    check(env, napi_get_array_length(env, argv[0], &k), "inputs");
    auto inner = ints(env, argv[1], "innerSizes");
    const int64_t outer = integer(env, argv[2], "outer");
    auto o = raw32(env, argv[3], "out");
    if (inner.size() != k) throw Error{"fer-native concat: one inner size per input"};
    const int64_t total = [&] {
      int64_t t = 0;
      for (int64_t i : inner) t += i;
      return t;
    }();
    if (total * outer != o.size) throw Error{"fer-native concat: out has the wrong size"};
    int64_t col = 0;
    for (uint32_t i = 0; i < k; i++) {
      napi_value e;
      check(env, napi_get_element(env, argv[0], i, &e), "inputs");
      auto v = raw32(env, e, "inputs[i]");
      if (v.size != inner[i] * outer) throw Error{"fer-native concat: input has the wrong size"};
      stridedCopy({outer, inner[i]}, {inner[i], 1}, {total, 1}, v.data, 0, o.data, col);
      col += inner[i];
    }
  });
}

// pad(x, shape, before[], fillBits (uint32 of the constant), out, outShape)
napi_value Pad(napi_env env, napi_callback_info info) {
  return entry(env, info, 6, [&](napi_value* argv) {
    auto x = raw32(env, argv[0], "x");
    auto shape = ints(env, argv[1], "shape");
    auto before = ints(env, argv[2], "before");
    const uint32_t fill = static_cast<uint32_t>(integer(env, argv[3], "fill"));
    auto o = raw32(env, argv[4], "out");
    auto os = ints(env, argv[5], "outShape");
    if (before.size() != shape.size() || os.size() != shape.size() || product(shape) != x.size || product(os) != o.size)
      throw Error{"fer-native pad: bad shapes"};
    auto ost = contiguous(os);
    parallelFor(o.size, o.size, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; i++) o.data[i] = fill;
    });
    int64_t off = 0;
    for (size_t k = 0; k < shape.size(); k++) off += before[k] * ost[k];
    stridedCopy(shape, contiguous(shape), ost, x.data, 0, o.data, off);
  });
}

// slice(x, shape, begin, size, out): out = x[begin : begin + size] (positive strides of 1).
napi_value Slice(napi_env env, napi_callback_info info) {
  return entry(env, info, 5, [&](napi_value* argv) {
    auto x = raw32(env, argv[0], "x");
    auto shape = ints(env, argv[1], "shape");
    auto begin = ints(env, argv[2], "begin");
    auto size = ints(env, argv[3], "size");
    auto o = raw32(env, argv[4], "out");
    if (begin.size() != shape.size() || size.size() != shape.size() || product(shape) != x.size || product(size) != o.size)
      throw Error{"fer-native slice: bad shapes"};
    auto xs = contiguous(shape);
    int64_t off = 0;
    for (size_t k = 0; k < shape.size(); k++) {
      if (begin[k] < 0 || size[k] < 0 || begin[k] + size[k] > shape[k]) throw Error{"fer-native slice: out of range"};
      off += begin[k] * xs[k];
    }
    stridedCopy(size, xs, contiguous(size), x.data, off, o.data, 0);
  });
}

}  // namespace
}  // namespace ferops

void Register_layout(napi_env env, napi_value exports) {
  ferops::exportFn(env, exports, "opsTile", ferops::Tile);
  ferops::exportFn(env, exports, "opsTranspose", ferops::Transpose);
  ferops::exportFn(env, exports, "opsConcat2d", ferops::Concat2d);
  ferops::exportFn(env, exports, "opsPad", ferops::Pad);
  ferops::exportFn(env, exports, "opsSlice", ferops::Slice);
}
