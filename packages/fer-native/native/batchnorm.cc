// FusedBatchNorm (what tf.batchNorm runs, in training and inference) over float32, bit-identical to
// tfjs-backend-cpu: y = offset + (x − mean) · scale / sqrt(variance + ε), evaluated in double in that order and
// rounded once. sqrt(variance + ε) is computed once per channel (the same double each element would compute).
#include <cmath>

#include "ops_util.h"

#define FER_SIMD __attribute__((target_clones("avx512f", "avx2", "default"), optimize("fp-contract=off")))

namespace ferops {
namespace {

// With `relu`, max(y, 0) as the Relu kernel computes it (NaN passes, −0 becomes +0).
template <bool relu>
FER_SIMD void bnRowsT(const float* x, float* y, int64_t rows, int64_t c, const double* m, const double* s,
                      const double* off, const double* sq) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * c;
    float* yr = y + r * c;
    for (int64_t k = 0; k < c; k++) {
      const float v = static_cast<float>(off[k] + (static_cast<double>(xr[k]) - m[k]) * s[k] / sq[k]);
      if constexpr (relu)
        yr[k] = v != v ? v : (v > 0.f ? v : 0.f);
      else
        yr[k] = v;
    }
  }
}
inline void bnRows(const float* x, float* y, int64_t rows, int64_t c, const double* m, const double* s,
                   const double* off, const double* sq) {
  bnRowsT<false>(x, y, rows, c, m, s, off, sq);
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

// ---- train-mode batch norm: statistics and the closed-form backward in one op each ----
//
// The backward's per-channel sums accumulate in double over a fixed partition of the rows into chunks, and the chunk
// partials are added in chunk order: results depend on neither the thread count nor the schedule. Short rows (CBAM's
// 1-channel map) are widened to `w` lanes as in BatchNorm above; lanes fold back to channels in lane order.

constexpr int64_t kChunks = 64;

struct Lanes {
  int64_t c, w, rows;
};

inline Lanes lanesFor(int64_t size, int64_t c) {
  const int64_t rep = c < 256 && size % (c * (256 / c)) == 0 ? 256 / c : 1;
  return Lanes{c, c * rep, size / (c * rep)};
}

// The gradient reaching the batch norm's output. With a fused ReLU (`relu`, its output r), dy·step(r) exactly as
// FerReluGrad computes dy·step(y) (r > 0 exactly where y > 0, NaN where y is NaN, 0 elsewhere).
template <bool relu>
inline float gradIn(const float* dy, const float* r, int64_t i) {
  if constexpr (relu) {
    const float s = r[i] > 0.f ? 1.f : (r[i] != r[i] ? r[i] : 0.f);
    return dy[i] * s;
  } else {
    return dy[i];
  }
}

// s1[k] += Σ dy, s2[k] += Σ dy·(x − mean[k]).
template <bool relu>
FER_SIMD void gradSumRows(const float* x, const float* dy, const float* ry, int64_t rows, int64_t w, const double* m,
                          double* s1, double* s2) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * w;
    const float* gr = dy + r * w;
    const float* rr = relu ? ry + r * w : nullptr;
    for (int64_t k = 0; k < w; k++) {
      const double g = gradIn<relu>(gr, rr, k);
      s1[k] += g;
      s2[k] += g * (static_cast<double>(xr[k]) - m[k]);
    }
  }
}

// dx = a·dy + b − cc·(x − mean), in double, rounded once.
template <bool relu>
FER_SIMD void gradRows(const float* x, const float* dy, const float* ry, float* dx, int64_t rows, int64_t w,
                       const double* m, const double* a, const double* b, const double* cc) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * w;
    const float* gr = dy + r * w;
    const float* rr = relu ? ry + r * w : nullptr;
    float* dr = dx + r * w;
    for (int64_t k = 0; k < w; k++)
      dr[k] = static_cast<float>(a[k] * gradIn<relu>(gr, rr, k) + b[k] - cc[k] * (static_cast<double>(xr[k]) - m[k]));
  }
}

// Runs body(lo, hi, acc1, acc2) for each chunk of rows with zeroed per-lane partials, then returns the per-channel
// totals (lanes folded) in s1, s2 (length c).
template <typename F>
void chunkedSums(const Lanes& L, int64_t work, F&& body, std::vector<double>& s1, std::vector<double>& s2) {
  const int64_t nch = std::max<int64_t>(1, std::min(kChunks, L.rows));
  std::vector<double> part(static_cast<size_t>(nch * 2 * L.w), 0.0);
  const int nt = static_cast<int>(std::min<int64_t>(threadsFor(work), nch));
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t i = 0; i < nch; i++) {
    int64_t lo, hi;
    chunk(L.rows, static_cast<int>(nch), static_cast<int>(i), lo, hi);
    double* p = part.data() + i * 2 * L.w;
    if (hi > lo) body(lo, hi, p, p + L.w);
  }
  s1.assign(L.c, 0.0);
  s2.assign(L.c, 0.0);
  for (int64_t i = 0; i < nch; i++) {
    const double* p = part.data() + i * 2 * L.w;
    for (int64_t k = 0; k < L.w; k++) {
      s1[k % L.c] += p[k];
      s2[k % L.c] += p[L.w + k];
    }
  }
}

// A per-channel value repeated over the w lanes.
std::vector<double> widen(const Lanes& L, const std::vector<double>& perChannel) {
  std::vector<double> out(L.w);
  for (int64_t k = 0; k < L.w; k++) out[k] = perChannel[k % L.c];
  return out;
}

// Sum over the middle axis of a [len, c] block in double, in index order, rounded to float: tfjs-backend-cpu's Sum
// over one axis. `sqDev`: of float((x − m)²) instead of x (the float32 Sub then Square of fer-core's composite).
template <bool sqDev>
FER_SIMD void sumAxis(const float* x, const float* m, int64_t len, int64_t c, double* acc, float* out) {
  for (int64_t k = 0; k < c; k++) acc[k] = 0.0;
  for (int64_t l = 0; l < len; l++) {
    const float* xr = x + l * c;
    for (int64_t k = 0; k < c; k++) {
      if constexpr (sqDev) {
        const float d = xr[k] - m[k];
        acc[k] += static_cast<double>(d * d);
      } else {
        acc[k] += static_cast<double>(xr[k]);
      }
    }
  }
  for (int64_t k = 0; k < c; k++) out[k] = static_cast<float>(acc[k]);
}

// fer-core's stagedMean over every axis but the last, bit for bit: Sum over the last non-channel axis first, then the
// next, each in double rounded to float32 (so partial sums stay short: PyTorch-level accuracy), then ÷ n in float32.
// dims: x's shape without the channel axis. The first stage reads x (parallel over its outer rows); the rest work on
// the small partial sums.
template <bool sqDev>
void stagedMean(const float* x, const float* m, const std::vector<int64_t>& dims, int64_t c, float* out) {
  int64_t outer = 1;
  for (size_t i = 0; i + 1 < dims.size(); i++) outer *= dims[i];
  const int64_t len = dims.back();
  std::vector<float> part(static_cast<size_t>(outer * c));
  parallelFor(outer, outer * len * c, [&](int64_t lo, int64_t hi) {
    std::vector<double> acc(c);
    for (int64_t o = lo; o < hi; o++) sumAxis<sqDev>(x + o * len * c, m, len, c, acc.data(), part.data() + o * c);
  });
  std::vector<double> acc(c);
  for (size_t a = dims.size() - 1; a-- > 0;) {
    outer /= dims[a];
    for (int64_t o = 0; o < outer; o++)
      sumAxis<false>(part.data() + o * dims[a] * c, nullptr, dims[a], c, acc.data(), part.data() + o * c);
  }
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  for (int64_t k = 0; k < c; k++) out[k] = static_cast<float>(static_cast<double>(part[k]) / static_cast<double>(n));
}

// batchNormTrain(x, shape, scale, offset, epsilon, y, mean, variance[, relu]): the batch mean and biased variance over
// all but the last axis exactly as fer-core's composite computes them (stagedMean of x, stagedMean of float32
// (x − mean)²), then y exactly as BatchNorm computes it from them, or with `relu` Relu(y) in the same pass. Three
// passes over x.
napi_value BatchNormTrain(napi_env env, napi_callback_info info) {
  entry(env, info, 8, [&](napi_value* argv) {
    auto x = typed<float>(env, argv[0], "x");
    std::vector<int64_t> dims = ints(env, argv[1], "shape");
    auto scale = typed<float>(env, argv[2], "scale");
    auto offset = typed<float>(env, argv[3], "offset");
    const double eps = number(env, argv[4], "epsilon");
    auto y = typed<float>(env, argv[5], "y");
    auto mean = typed<float>(env, argv[6], "mean");
    auto var = typed<float>(env, argv[7], "variance");
    const bool relu = optionalFlag(env, argv[8], "relu");
    const int64_t c = scale.size;
    if (dims.size() < 2 || dims.back() != c || product(dims) != x.size || offset.size != c || mean.size != c ||
        var.size != c || y.size != x.size)
      throw Error{"fer-native batchNormTrain: x must have shape [..., C] (rank 2 or more), and scale, offset, mean and "
                  "variance one value per channel"};
    dims.pop_back();
    stagedMean<false>(x.data, nullptr, dims, c, mean.data);
    stagedMean<true>(x.data, mean.data, dims, c, var.data);
    const Lanes L = lanesFor(x.size, c);
    std::vector<double> m(c), s(c), off(c), sq(c);
    for (int64_t k = 0; k < c; k++) {
      m[k] = mean.data[k];
      s[k] = scale.data[k];
      off[k] = offset.data[k];
      sq[k] = std::sqrt(static_cast<double>(var.data[k]) + eps);
    }
    const auto mW = widen(L, m), sW = widen(L, s), offW = widen(L, off), sqW = widen(L, sq);
    parallelFor(L.rows, x.size * 4, [&](int64_t lo, int64_t hi) {
      (relu ? bnRowsT<true> : bnRowsT<false>)(x.data + lo * L.w, y.data + lo * L.w, hi - lo, L.w, mW.data(),
                                               sW.data(), offW.data(), sqW.data());
    });
  });
  return nullptr;
}

// batchNormTrainGrad(x, dy, mean, variance, scale, epsilon, dx, dScale, dOffset[, reluY]): the closed-form backward
// of BatchNormTrain (PyTorch's): with rstd = 1/sqrt(variance + ε), xhat = (x − mean)·rstd, k = scale·rstd,
//   dOffset = Σ dy,  dScale = Σ dy·xhat,  dx = k·(dy − mean(dy) − xhat·mean(dy·xhat)).
// With reluY (the fused ReLU's output), dy is first masked as Relu's gradient masks it. Two passes: the sums, then dx.
napi_value BatchNormTrainGrad(napi_env env, napi_callback_info info) {
  entry(env, info, 9, [&](napi_value* argv) {
    auto x = typed<float>(env, argv[0], "x");
    auto dy = typed<float>(env, argv[1], "dy");
    auto mean = typed<float>(env, argv[2], "mean");
    auto var = typed<float>(env, argv[3], "variance");
    auto scale = typed<float>(env, argv[4], "scale");
    const double eps = number(env, argv[5], "epsilon");
    auto dx = typed<float>(env, argv[6], "dx");
    auto dScale = typed<float>(env, argv[7], "dScale");
    auto dOffset = typed<float>(env, argv[8], "dOffset");
    const View<float> ry = optionalTyped<float>(env, argv[9], "reluY");
    const bool relu = ry.data != nullptr;
    const int64_t c = scale.size;
    if (c < 1 || x.size % c != 0 || dy.size != x.size || dx.size != x.size || mean.size != c || var.size != c ||
        dScale.size != c || dOffset.size != c || (relu && ry.size != x.size))
      throw Error{"fer-native batchNormTrainGrad: x, dy and dx must have the same size, a multiple of the channel "
                  "count, and mean, variance, scale, dScale and dOffset one value per channel"};
    const Lanes L = lanesFor(x.size, c);
    std::vector<double> m(c), rstd(c);
    for (int64_t k = 0; k < c; k++) {
      m[k] = mean.data[k];
      rstd[k] = 1.0 / std::sqrt(static_cast<double>(var.data[k]) + eps);
    }
    const std::vector<double> mW = widen(L, m);
    std::vector<double> sumDy, sumDyXc;
    chunkedSums(
        L, x.size,
        [&](int64_t lo, int64_t hi, double* a1, double* a2) {
          const float* rr = relu ? ry.data + lo * L.w : nullptr;
          (relu ? gradSumRows<true> : gradSumRows<false>)(x.data + lo * L.w, dy.data + lo * L.w, rr, hi - lo, L.w,
                                                          mW.data(), a1, a2);
        },
        sumDy, sumDyXc);
    const double n = static_cast<double>(x.size / c);
    std::vector<double> a(c), b(c), cc(c);
    for (int64_t k = 0; k < c; k++) {
      dOffset.data[k] = static_cast<float>(sumDy[k]);
      dScale.data[k] = static_cast<float>(sumDyXc[k] * rstd[k]);
      a[k] = static_cast<double>(scale.data[k]) * rstd[k];
      b[k] = -a[k] * sumDy[k] / n;
      cc[k] = a[k] * rstd[k] * rstd[k] * sumDyXc[k] / n;
    }
    const auto aW = widen(L, a), bW = widen(L, b), ccW = widen(L, cc);
    parallelFor(L.rows, x.size * 4, [&](int64_t lo, int64_t hi) {
      const float* rr = relu ? ry.data + lo * L.w : nullptr;
      (relu ? gradRows<true> : gradRows<false>)(x.data + lo * L.w, dy.data + lo * L.w, rr, dx.data + lo * L.w, hi - lo,
                                                L.w, mW.data(), aW.data(), bW.data(), ccW.data());
    });
  });
  return nullptr;
}

}  // namespace
}  // namespace ferops

void Register_batchnorm(napi_env env, napi_value exports) {
  ferops::exportFn(env, exports, "opsBatchNorm", ferops::BatchNorm);
  ferops::exportFn(env, exports, "opsBatchNormTrain", ferops::BatchNormTrain);
  ferops::exportFn(env, exports, "opsBatchNormTrainGrad", ferops::BatchNormTrainGrad);
}
