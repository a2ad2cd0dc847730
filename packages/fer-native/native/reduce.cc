// Reductions (Sum, Mean, Max, Min) over any set of axes that, once size-1 dims are dropped and neighbours merged,
// forms one contiguous block: x viewed as [outer, R, inner], reducing R. That covers every reduction the models run
// (spatial, channel, batch and all-but-channel reductions of NHWC maps) without the transpose tfjs-backend-cpu
// makes. The cpu kernel adds each output's R values in order into a JS number (double); so do we, so sums are
// bit-identical to it. Other axis sets return false and the caller falls back to the cpu kernel.
#include <cmath>

#include "ops_util.h"

#define FER_SIMD __attribute__((target_clones("avx512f", "avx2", "default"), optimize("fp-contract=off")))

namespace ferops {
namespace {

enum Reduce : int { kSum = 0, kMean, kMax, kMin };

// Column block (along inner) one work item accumulates: its double accumulators stay in L1.
constexpr int64_t kBlock = 512;

// acc[j] += x[r * inner + j] for r in [0, R), j in [0, len); then out[j] = acc[j] (scaled by 1/n first for Mean).
template <bool kMeanOp>
FER_SIMD void sumColumns(const float* x, int64_t R, int64_t inner, int64_t len, float n, float* out) {
  double acc[kBlock];
  for (int64_t j = 0; j < len; j++) acc[j] = 0.0;
  for (int64_t r = 0; r < R; r++) {
    const float* row = x + r * inner;
    if (kMeanOp)
      for (int64_t j = 0; j < len; j++) acc[j] += static_cast<double>(row[j] / n);
    else
      for (int64_t j = 0; j < len; j++) acc[j] += static_cast<double>(row[j]);
  }
  for (int64_t j = 0; j < len; j++) out[j] = static_cast<float>(acc[j]);
}

// The cpu kernels' running max/min: any NaN wins (and stays); otherwise strictly greater (less) replaces.
template <bool kMaxOp>
FER_SIMD void extremeColumns(const float* x, int64_t R, int64_t inner, int64_t len, float* out) {
  float acc[kBlock];
  for (int64_t j = 0; j < len; j++) acc[j] = x[j];
  for (int64_t r = 1; r < R; r++) {
    const float* row = x + r * inner;
    for (int64_t j = 0; j < len; j++) {
      const float v = row[j];
      const bool take = kMaxOp ? (v != v || v > acc[j]) : (v != v || v < acc[j]);
      acc[j] = take ? v : acc[j];
    }
  }
  for (int64_t j = 0; j < len; j++) out[j] = acc[j];
}

// inner == 1: each output reduces a contiguous run of R. Eight outputs at a time keep eight independent double
// chains in flight (each still added in order).
template <bool kMeanOp>
void sumRows(const float* x, int64_t rows, int64_t R, float n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= rows; i += 8) {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const float* p = x + i * R;
    for (int64_t r = 0; r < R; r++)
      for (int k = 0; k < 8; k++) s[k] += static_cast<double>(kMeanOp ? p[k * R + r] / n : p[k * R + r]);
    for (int k = 0; k < 8; k++) out[i + k] = static_cast<float>(s[k]);
  }
  for (; i < rows; i++) {
    double s = 0;
    const float* p = x + i * R;
    for (int64_t r = 0; r < R; r++) s += static_cast<double>(kMeanOp ? p[r] / n : p[r]);
    out[i] = static_cast<float>(s);
  }
}

template <bool kMaxOp>
void extremeRows(const float* x, int64_t rows, int64_t R, float* out) {
  for (int64_t i = 0; i < rows; i++) {
    const float* p = x + i * R;
    float m = p[0];
    for (int64_t r = 1; r < R; r++) {
      const float v = p[r];
      if (kMaxOp ? (v != v || v > m) : (v != v || v < m)) m = v;
    }
    out[i] = m;
  }
}

// Views `shape` reduced over `axes` as [outer, R, inner] reducing R: false when the non-trivial reduced dims do not
// form one contiguous block (the pattern must be K* R* K* once size-1 dims are dropped).
bool blockView(const std::vector<int64_t>& shape, const std::vector<int64_t>& axes, int64_t& outer, int64_t& R,
               int64_t& inner) {
  std::vector<bool> red(shape.size(), false);
  for (int64_t a : axes) {
    if (a < 0 || a >= static_cast<int64_t>(shape.size())) throw Error{"fer-native reduce: axis out of range"};
    red[a] = true;
  }
  outer = R = inner = 1;
  int phase = 0;  // 0: before the reduced block, 1: inside it, 2: after it
  bool ok = true;
  for (size_t i = 0; i < shape.size(); i++) {
    if (shape[i] == 1) continue;
    if (red[i]) {
      if (phase == 2) ok = false;
      phase = 1;
      R *= shape[i];
    } else if (phase == 0) {
      outer *= shape[i];
    } else {
      phase = 2;
      inner *= shape[i];
    }
  }
  return ok;
}

// ---- mulSum: Σ over a block of float32(a·b), the Multiply gradient's sum(mul(dy, x), axes) in one read pass ----

// acc[j] += float(a·b)[r * inner + j] in r order, as sumColumns.
FER_SIMD void mulSumColumns(const float* a, const float* b, int64_t R, int64_t inner, int64_t len, float* out) {
  double acc[kBlock];
  for (int64_t j = 0; j < len; j++) acc[j] = 0.0;
  for (int64_t r = 0; r < R; r++) {
    const float* ar = a + r * inner;
    const float* br = b + r * inner;
    for (int64_t j = 0; j < len; j++) acc[j] += static_cast<double>(ar[j] * br[j]);
  }
  for (int64_t j = 0; j < len; j++) out[j] = static_cast<float>(acc[j]);
}

// inner == 1, as sumRows: eight independent in-order chains.
FER_SIMD void mulSumRows(const float* a, const float* b, int64_t rows, int64_t R, float* out) {
  int64_t i = 0;
  for (; i + 8 <= rows; i += 8) {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const float* p = a + i * R;
    const float* q = b + i * R;
    for (int64_t r = 0; r < R; r++)
      for (int k = 0; k < 8; k++) s[k] += static_cast<double>(p[k * R + r] * q[k * R + r]);
    for (int k = 0; k < 8; k++) out[i + k] = static_cast<float>(s[k]);
  }
  for (; i < rows; i++) {
    double s = 0;
    const float* p = a + i * R;
    const float* q = b + i * R;
    for (int64_t r = 0; r < R; r++) s += static_cast<double>(p[r] * q[r]);
    out[i] = static_cast<float>(s);
  }
}

// mulSum(a, b, shape, axes, out) → true, or false when the axes do not form one block (caller falls back): a and b of
// one shape; out = sum(a·b, axes) bit-identical to tfjs-backend-cpu's Multiply then Sum.
napi_value MulSum(napi_env env, napi_callback_info info) {
  napi_value result = nullptr;
  entry(env, info, 5, [&](napi_value* argv) {
    auto a = typed<float>(env, argv[0], "a");
    auto b = typed<float>(env, argv[1], "b");
    auto shape = ints(env, argv[2], "shape");
    auto axes = ints(env, argv[3], "axes");
    auto o = typed<float>(env, argv[4], "out");
    if (product(shape) != a.size || b.size != a.size) throw Error{"fer-native mulSum: a and b must both have shape"};
    int64_t outer = 1, R = 1, inner = 1;
    const bool ok = blockView(shape, axes, outer, R, inner) && outer * inner == o.size && a.size > 0;
    if (ok) {
      if (inner == 1) {
        const int64_t items = (outer + 63) / 64;
        parallelFor(items, a.size * 2, [&](int64_t lo, int64_t hi) {
          const int64_t r0 = lo * 64, r1 = std::min(outer, hi * 64);
          mulSumRows(a.data + r0 * R, b.data + r0 * R, r1 - r0, R, o.data + r0);
        });
      } else {
        const int64_t blocks = (inner + kBlock - 1) / kBlock;
        parallelFor(outer * blocks, a.size * 2, [&](int64_t lo, int64_t hi) {
          for (int64_t it = lo; it < hi; it++) {
            const int64_t ob = it / blocks, j0 = (it % blocks) * kBlock;
            const int64_t len = std::min(kBlock, inner - j0);
            const int64_t off = ob * R * inner + j0;
            mulSumColumns(a.data + off, b.data + off, R, inner, len, o.data + ob * inner + j0);
          }
        });
      }
    }
    napi_get_boolean(env, ok, &result);
  });
  return result;
}

// ---- meanMaxGrad: the gradient of a mean and a max over the same block, in one pass ----

// The Max gradient's factor 1 − step(y − x) as fer-backend's formula rounds it (NaN passes through step).
inline float maxMask(float y, float x) {
  const float d = y - x;
  const float s = d > 0.f ? 1.f : (d != d ? d : 0.f);
  return 1.f - s;
}

// One outer index: dx[r, j] = mt[j] + dm[j]·(1 − step(y[j] − x[r, j])), mt = float32(dMean / n).
FER_SIMD void meanMaxGradColumns(const float* x, const float* y, const float* mt, const float* dm, int64_t R,
                                 int64_t inner, float* dx) {
  for (int64_t r = 0; r < R; r++) {
    const float* xr = x + r * inner;
    float* dr = dx + r * inner;
    for (int64_t j = 0; j < inner; j++) dr[j] = mt[j] + dm[j] * maxMask(y[j], xr[j]);
  }
}

// inner == 1: each row of R shares one y, mean term and max gradient.
FER_SIMD void meanMaxGradRows(const float* x, const float* y, const float* mt, const float* dm, int64_t rows,
                              int64_t R, float* dx) {
  for (int64_t i = 0; i < rows; i++) {
    const float yi = y[i], mi = mt[i], di = dm[i];
    const float* xr = x + i * R;
    float* dr = dx + i * R;
    for (int64_t r = 0; r < R; r++) dr[r] = mi + di * maxMask(yi, xr[r]);
  }
}

// meanMaxGrad(x, shape, axes, y, dMean, dMax, out) → true, or false when the axes do not form one block: y (the max),
// dMean and dMax hold one value per output of the reduction (x's shape without the axes); out = x's shape:
//   dx = float32(dMean / n) + dMax·(1 − step(y − x)),  n = the reduced count,
// each term rounded as tfjs' ops round it (RealDiv; fer-backend's Max gradient), so equal to adding the Mean
// gradient to the Max gradient.
napi_value MeanMaxGrad(napi_env env, napi_callback_info info) {
  napi_value result = nullptr;
  entry(env, info, 7, [&](napi_value* argv) {
    auto x = typed<float>(env, argv[0], "x");
    auto shape = ints(env, argv[1], "shape");
    auto axes = ints(env, argv[2], "axes");
    auto y = typed<float>(env, argv[3], "y");
    auto dMean = typed<float>(env, argv[4], "dMean");
    auto dMax = typed<float>(env, argv[5], "dMax");
    auto o = typed<float>(env, argv[6], "out");
    if (product(shape) != x.size || o.size != x.size) throw Error{"fer-native meanMaxGrad: x and out must have shape"};
    int64_t outer = 1, R = 1, inner = 1;
    const bool ok = blockView(shape, axes, outer, R, inner) && outer * inner == y.size && dMean.size == y.size &&
                    dMax.size == y.size && x.size > 0;
    if (ok) {
      const float n = static_cast<float>(R);
      std::vector<float> mt(static_cast<size_t>(y.size));
      for (int64_t k = 0; k < y.size; k++) mt[k] = dMean.data[k] / n;
      if (inner == 1) {
        parallelFor(outer, x.size * 2, [&](int64_t lo, int64_t hi) {
          meanMaxGradRows(x.data + lo * R, y.data + lo, mt.data() + lo, dMax.data + lo, hi - lo, R, o.data + lo * R);
        });
      } else {
        parallelFor(outer, x.size * 2, [&](int64_t lo, int64_t hi) {
          for (int64_t ob = lo; ob < hi; ob++) {
            const int64_t k = ob * inner;
            meanMaxGradColumns(x.data + ob * R * inner, y.data + k, mt.data() + k, dMax.data + k, R, inner,
                               o.data + ob * R * inner);
          }
        });
      }
    }
    napi_get_boolean(env, ok, &result);
  });
  return result;
}

// ---- meanMax: a mean and a max over the same block in one read pass (CBAM's pools) ----

// One outer index, inner > 1, the block split as [R1, R2] (R2 the last reduced axis). staged: fer-core's stagedMean
// (Σ over R2 in double rounded to float32, then Σ of those over R1 in double rounded, then ÷ n in float32); otherwise
// the Mean kernel's Σ of float32(x / n) in double. The max as the Max kernel runs it (in order; any NaN wins).
template <bool staged>
FER_SIMD void meanMaxColumns(const float* x, int64_t R1, int64_t R2, int64_t inner, float n, double* acc2,
                             double* acc1, float* mean, float* mx) {
  for (int64_t j = 0; j < inner; j++) {
    acc1[j] = 0.0;
    mx[j] = x[j];
  }
  for (int64_t r1 = 0; r1 < R1; r1++) {
    if (staged)
      for (int64_t j = 0; j < inner; j++) acc2[j] = 0.0;
    for (int64_t r2 = 0; r2 < R2; r2++) {
      const float* row = x + (r1 * R2 + r2) * inner;
      for (int64_t j = 0; j < inner; j++) {
        const float v = row[j];
        if (staged)
          acc2[j] += static_cast<double>(v);
        else
          acc1[j] += static_cast<double>(v / n);
        mx[j] = (v != v || v > mx[j]) ? v : mx[j];
      }
    }
    if (staged)
      for (int64_t j = 0; j < inner; j++) acc1[j] += static_cast<double>(static_cast<float>(acc2[j]));
  }
  for (int64_t j = 0; j < inner; j++)
    mean[j] = staged ? static_cast<float>(acc1[j]) / n : static_cast<float>(acc1[j]);
}

// inner == 1, not staged: each output reduces a contiguous run of R.
FER_SIMD void meanMaxRows(const float* x, int64_t rows, int64_t R, float n, float* mean, float* mx) {
  for (int64_t i = 0; i < rows; i++) {
    const float* p = x + i * R;
    double s = 0;
    float m = p[0];
    for (int64_t r = 0; r < R; r++) {
      const float v = p[r];
      s += static_cast<double>(v / n);
      if (v != v || v > m) m = v;
    }
    mean[i] = static_cast<float>(s);
    mx[i] = m;
  }
}

// meanMax(x, shape, axes, staged, mean, max) → true, or false when the axes do not form one block or (staged) span
// more than two non-trivial dims: mean and max over axes, each equal to the cpu kernels'
// (staged: fer-core's stagedMean, Sum per axis from the last; otherwise the Mean kernel) and the Max kernel's.
napi_value MeanMax(napi_env env, napi_callback_info info) {
  napi_value result = nullptr;
  entry(env, info, 6, [&](napi_value* argv) {
    auto x = typed<float>(env, argv[0], "x");
    auto shape = ints(env, argv[1], "shape");
    auto axes = ints(env, argv[2], "axes");
    napi_value sv = argv[3];
    bool staged = false;
    check(env, napi_get_value_bool(env, sv, &staged), "staged");
    auto mean = typed<float>(env, argv[4], "mean");
    auto mx = typed<float>(env, argv[5], "max");
    if (product(shape) != x.size) throw Error{"fer-native meanMax: shape does not match x"};
    int64_t outer = 1, R = 1, inner = 1;
    bool ok = blockView(shape, axes, outer, R, inner) && outer * inner == mean.size && mx.size == mean.size &&
              x.size > 0;
    // Staged: the last reduced axis of size > 1 is R2, the rest R1 (at most one more non-trivial reduced dim).
    int64_t R2 = R, big = 0;
    for (int64_t a : axes) big += shape[a] > 1 ? 1 : 0;
    if (staged) {
      int64_t last = -1;
      for (int64_t a : axes)
        if (shape[a] > 1 && a > last) last = a;
      R2 = last >= 0 ? shape[last] : 1;
      ok = ok && big <= 2;
    }
    if (ok) {
      const float n = static_cast<float>(R);
      if (!staged && inner == 1) {
        const int64_t items = (outer + 63) / 64;
        parallelFor(items, x.size, [&](int64_t lo, int64_t hi) {
          const int64_t r0 = lo * 64, r1 = std::min(outer, hi * 64);
          meanMaxRows(x.data + r0 * R, r1 - r0, R, n, mean.data + r0, mx.data + r0);
        });
      } else {
        const int64_t R1 = R / R2;
        parallelFor(outer, x.size, [&](int64_t lo, int64_t hi) {
          std::vector<double> acc(static_cast<size_t>(2 * inner));
          for (int64_t ob = lo; ob < hi; ob++) {
            const float* xs = x.data + ob * R * inner;
            float* me = mean.data + ob * inner;
            float* ma = mx.data + ob * inner;
            if (staged)
              meanMaxColumns<true>(xs, R1, R2, inner, n, acc.data(), acc.data() + inner, me, ma);
            else
              meanMaxColumns<false>(xs, R1, R2, inner, n, acc.data(), acc.data() + inner, me, ma);
          }
        });
      }
    }
    napi_get_boolean(env, ok, &result);
  });
  return result;
}

// reduce(op, x, shape, axes, out) → true, or false when the axes do not form one block (caller falls back).
napi_value ReduceFn(napi_env env, napi_callback_info info) {
  napi_value result = nullptr;
  entry(env, info, 5, [&](napi_value* argv) {
    const int op = static_cast<int>(integer(env, argv[0], "op"));
    auto x = typed<float>(env, argv[1], "x");
    auto shape = ints(env, argv[2], "shape");
    auto axes = ints(env, argv[3], "axes");
    auto o = typed<float>(env, argv[4], "out");
    if (product(shape) != x.size) throw Error{"fer-native reduce: shape does not match x"};
    int64_t outer = 1, R = 1, inner = 1;
    bool ok = blockView(shape, axes, outer, R, inner);
    const bool extreme = op == kMax || op == kMin;
    ok = ok && outer * inner == o.size && (R > 0 || !extreme) && x.size > 0;
    if (ok) {
      const float n = static_cast<float>(R);
      const float* xd = x.data;
      float* od = o.data;
      if (inner == 1) {
        // Outputs in blocks of 64 rows per work item.
        const int64_t items = (outer + 63) / 64;
        parallelFor(items, x.size, [&](int64_t lo, int64_t hi) {
          const int64_t r0 = lo * 64, r1 = std::min(outer, hi * 64);
          const float* xs = xd + r0 * R;
          switch (op) {
            case kSum: sumRows<false>(xs, r1 - r0, R, n, od + r0); break;
            case kMean: sumRows<true>(xs, r1 - r0, R, n, od + r0); break;
            case kMax: extremeRows<true>(xs, r1 - r0, R, od + r0); break;
            default: extremeRows<false>(xs, r1 - r0, R, od + r0); break;
          }
        });
      } else {
        const int64_t blocks = (inner + kBlock - 1) / kBlock;
        parallelFor(outer * blocks, x.size, [&](int64_t lo, int64_t hi) {
          for (int64_t it = lo; it < hi; it++) {
            const int64_t ob = it / blocks, j0 = (it % blocks) * kBlock;
            const int64_t len = std::min(kBlock, inner - j0);
            const float* xs = xd + ob * R * inner + j0;
            float* os = od + ob * inner + j0;
            switch (op) {
              case kSum: sumColumns<false>(xs, R, inner, len, n, os); break;
              case kMean: sumColumns<true>(xs, R, inner, len, n, os); break;
              case kMax: extremeColumns<true>(xs, R, inner, len, os); break;
              default: extremeColumns<false>(xs, R, inner, len, os); break;
            }
          }
        });
      }
    }
    napi_get_boolean(env, ok, &result);
  });
  return result;
}

}  // namespace
}  // namespace ferops

void Register_reduce(napi_env env, napi_value exports) {
  ferops::exportFn(env, exports, "opsReduce", ferops::ReduceFn);
  ferops::exportFn(env, exports, "opsMulSum", ferops::MulSum);
  ferops::exportFn(env, exports, "opsMeanMaxGrad", ferops::MeanMaxGrad);
  ferops::exportFn(env, exports, "opsMeanMax", ferops::MeanMax);
}
