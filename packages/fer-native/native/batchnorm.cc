// FusedBatchNorm (what tf.batchNorm runs, in training and inference) over float32, bit-identical to
// tfjs-backend-cpu: y = offset + (x − mean) · scale / sqrt(variance + ε), evaluated in double in that order and
// rounded once. sqrt(variance + ε) is computed once per channel (the same double each element would compute).
#include <cmath>

#include "ops_util.h"

#define FER_SIMD __attribute__((target_clones("avx512f", "avx2", "default"), optimize("fp-contract=off")))

namespace ferops {
namespace {

FER_SIMD void bnRows(const float* x, float* y, int64_t rows, int64_t c, const double* m, const double* s,
                     const double* off, const double* sq) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * c;
    float* yr = y + r * c;
    for (int64_t k = 0; k < c; k++)
      yr[k] = static_cast<float>(off[k] + (static_cast<double>(xr[k]) - m[k]) * s[k] / sq[k]);
  }
}

// batchNorm(x, mean, variance, scale | null, offset | null, epsilon, out) → true, or false when the parameters'
// lengths are not all 1 or one common length dividing x's size (the caller falls back).
napi_value BatchNorm(napi_env env, napi_callback_info info) {
  napi_value result = nullptr;
  entry(env, info, 7, [&](napi_value* argv) {
    auto x = typed<float>(env, argv[0], "x");
    auto mean = typed<float>(env, argv[1], "mean");
    auto var = typed<float>(env, argv[2], "variance");
    napi_valuetype ts, to;
    napi_typeof(env, argv[3], &ts);
    napi_typeof(env, argv[4], &to);
    View<float> scale, offset;
    const float one = 1.f, zero = 0.f;
    if (ts == napi_null || ts == napi_undefined)
      scale = View<float>{const_cast<float*>(&one), 1};
    else
      scale = typed<float>(env, argv[3], "scale");
    if (to == napi_null || to == napi_undefined)
      offset = View<float>{const_cast<float*>(&zero), 1};
    else
      offset = typed<float>(env, argv[4], "offset");
    const double eps = number(env, argv[5], "epsilon");
    auto y = typed<float>(env, argv[6], "out");
    if (y.size != x.size) throw Error{"fer-native batchNorm: x and out differ in size"};
    const int64_t c = std::max({mean.size, var.size, scale.size, offset.size});
    bool ok = c >= 1 && x.size % c == 0;
    for (int64_t len : {mean.size, var.size, scale.size, offset.size}) ok = ok && (len == 1 || len == c);
    if (ok) {
      // Short rows (CBAM's 1-channel map) are widened to a multiple of c so the inner loop vectorises.
      const int64_t rep = c < 256 && x.size % (c * (256 / c)) == 0 ? 256 / c : 1;
      const int64_t w = c * rep;
      std::vector<double> m(w), s(w), off(w), sq(w);
      for (int64_t k = 0; k < w; k++) {
        const int64_t ch = k % c;
        m[k] = mean.data[mean.size == 1 ? 0 : ch];
        s[k] = scale.data[scale.size == 1 ? 0 : ch];
        off[k] = offset.data[offset.size == 1 ? 0 : ch];
        sq[k] = std::sqrt(static_cast<double>(var.data[var.size == 1 ? 0 : ch]) + eps);
      }
      const int64_t rows = x.size / w;
      parallelFor(rows, x.size * 4, [&](int64_t lo, int64_t hi) {
        bnRows(x.data + lo * w, y.data + lo * w, hi - lo, w, m.data(), s.data(), off.data(), sq.data());
      });
    }
    napi_get_boolean(env, ok, &result);
  });
  return result;
}

}  // namespace
}  // namespace ferops

void Register_batchnorm(napi_env env, napi_value exports) {
  ferops::exportFn(env, exports, "opsBatchNorm", ferops::BatchNorm);
}
