// 2-D max and average pooling over NHWC float32 and their gradients, with tfjs-backend-cpu's semantics:
// - MaxPool: running max from -inf with a strict >, so NaN never wins and the first of equal values is kept;
// - MaxPoolGrad: dy goes to the first maximum of its window in row-major order (cpu's maxPoolPositions); where
//   windows overlap, a cell adds its windows' dy in window order in double, as the cpu kernel does;
// - AvgPool: double sum over the window's in-bounds cells / their count;
// - AvgPoolGrad: double sum of the dy of the windows covering a cell × 1/(filter area) (padding cells counted, as in
//   tfjs).
// The JS side computes the geometry with backend_util.computePool2DInfo; dilation is 1 (tfjs pools have none).
#include <cmath>
#include <limits>

#include "ops_util.h"

#define FER_SIMD __attribute__((target_clones("avx512f", "avx2", "default"), optimize("fp-contract=off")))

namespace ferops {
namespace {

struct Geo {
  int64_t n, h, w, c, kh, kw, sh, sw, top, left, ho, wo;
};

Geo geometry(napi_env env, napi_value v) {
  auto d = ints(env, v, "geometry");
  if (d.size() != 12) throw Error{"fer-native pool: geometry needs 12 numbers"};
  Geo g{d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11]};
  if (g.kh < 1 || g.kw < 1 || g.sh < 1 || g.sw < 1) throw Error{"fer-native pool: bad filter or stride"};
  return g;
}

FER_SIMD void maxInto(const float* x, float* m, int64_t c) {
  for (int64_t k = 0; k < c; k++) m[k] = x[k] > m[k] ? x[k] : m[k];
}
FER_SIMD void addInto(const float* x, double* s, int64_t c) {
  for (int64_t k = 0; k < c; k++) s[k] += static_cast<double>(x[k]);
}
// Branch-free running argmax over channels (strict >, so the first maximum stays): vectorises.
FER_SIMD void argmaxInto(const float* v, float* m, int32_t* p, int32_t here, int64_t c) {
  for (int64_t k = 0; k < c; k++) {
    const bool gt = v[k] > m[k];
    m[k] = gt ? v[k] : m[k];
    p[k] = gt ? here : p[k];
  }
}
// acc += dy where this cell is the window's maximum. Adding +0 elsewhere changes nothing: acc starts at +0 and a
// round-to-nearest sum is never -0 unless both terms are, and NaN or inf dy of other windows is never added.
FER_SIMD void routeInto(const int32_t* p, const float* d, double* acc, int32_t here, int64_t c) {
  for (int64_t k = 0; k < c; k++) acc[k] += p[k] == here ? static_cast<double>(d[k]) : 0.0;
}

// One output row (b, oy) of MaxPool or AvgPool.
void poolRow(bool isMax, const Geo& g, const float* x, float* y, int64_t b, int64_t oy, std::vector<double>& acc) {
  const int64_t ry = oy * g.sh - g.top;
  const int64_t y0 = std::max<int64_t>(0, ry), y1 = std::min(g.h, ry + g.kh);
  for (int64_t ox = 0; ox < g.wo; ox++) {
    const int64_t rx = ox * g.sw - g.left;
    const int64_t x0 = std::max<int64_t>(0, rx), x1 = std::min(g.w, rx + g.kw);
    float* out = y + ((b * g.ho + oy) * g.wo + ox) * g.c;
    if (isMax) {
      for (int64_t k = 0; k < g.c; k++) out[k] = -std::numeric_limits<float>::infinity();
      for (int64_t iy = y0; iy < y1; iy++)
        for (int64_t ix = x0; ix < x1; ix++) maxInto(x + ((b * g.h + iy) * g.w + ix) * g.c, out, g.c);
    } else {
      double* s = acc.data();
      for (int64_t k = 0; k < g.c; k++) s[k] = 0.0;
      for (int64_t iy = y0; iy < y1; iy++)
        for (int64_t ix = x0; ix < x1; ix++) addInto(x + ((b * g.h + iy) * g.w + ix) * g.c, s, g.c);
      const double count = static_cast<double>((y1 - y0) * (x1 - x0));
      for (int64_t k = 0; k < g.c; k++) out[k] = static_cast<float>(s[k] / count);
    }
  }
}

// pool(kind: 0 max | 1 avg, x, geometry[12], out)
napi_value Pool(napi_env env, napi_callback_info info) {
  return entry(env, info, 4, [&](napi_value* argv) {
    const bool isMax = integer(env, argv[0], "kind") == 0;
    auto x = typed<float>(env, argv[1], "x");
    const Geo g = geometry(env, argv[2]);
    auto y = typed<float>(env, argv[3], "out");
    if (x.size != g.n * g.h * g.w * g.c || y.size != g.n * g.ho * g.wo * g.c)
      throw Error{"fer-native pool: sizes do not match the geometry"};
    parallelFor(g.n * g.ho, x.size, [&](int64_t lo, int64_t hi) {
      std::vector<double> acc(g.c);
      for (int64_t r = lo; r < hi; r++) poolRow(isMax, g, x.data, y.data, r / g.ho, r % g.ho, acc);
    });
  });
}

// Window-local index (wy * kw + wx) of each output's first maximum, -1 when nothing beats -inf (cpu semantics).
void maxPositions(const Geo& g, const float* x, int32_t* pos) {
  parallelFor(g.n * g.ho, g.n * g.h * g.w * g.c, [&](int64_t lo, int64_t hi) {
    std::vector<float> m(g.c);
    for (int64_t r = lo; r < hi; r++) {
      const int64_t b = r / g.ho, oy = r % g.ho;
      const int64_t ry = oy * g.sh - g.top;
      const int64_t y0 = std::max<int64_t>(0, ry), y1 = std::min(g.h, ry + g.kh);
      for (int64_t ox = 0; ox < g.wo; ox++) {
        const int64_t rx = ox * g.sw - g.left;
        const int64_t x0 = std::max<int64_t>(0, rx), x1 = std::min(g.w, rx + g.kw);
        int32_t* p = pos + ((b * g.ho + oy) * g.wo + ox) * g.c;
        for (int64_t k = 0; k < g.c; k++) {
          m[k] = -std::numeric_limits<float>::infinity();
          p[k] = -1;
        }
        for (int64_t iy = y0; iy < y1; iy++)
          for (int64_t ix = x0; ix < x1; ix++) {
            const float* v = x + ((b * g.h + iy) * g.w + ix) * g.c;
            argmaxInto(v, m.data(), p, static_cast<int32_t>((iy - ry) * g.kw + (ix - rx)), g.c);
          }
      }
    }
  });
}

inline int64_t floorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Gradient gather: dx(b, iy, ix, k) = Σ over windows (oy, ox) covering the cell, in row-major window order, of dy
// where `take` says the window routes to this cell; accumulated in double, times `scale`.
template <typename Take>
void gatherGrad(const Geo& g, const float* dy, float* dx, double scale, Take&& take) {
  parallelFor(g.n * g.h, g.n * g.h * g.w * g.c, [&](int64_t lo, int64_t hi) {
    std::vector<double> acc(g.c);
    for (int64_t r = lo; r < hi; r++) {
      const int64_t b = r / g.h, iy = r % g.h;
      // Windows whose rows cover iy: oy*sh - top <= iy < oy*sh - top + kh.
      const int64_t oy0 = std::max<int64_t>(0, floorDiv(iy + g.top - g.kh, g.sh) + 1);
      const int64_t oy1 = std::min(g.ho - 1, (iy + g.top) / g.sh);
      for (int64_t ix = 0; ix < g.w; ix++) {
        const int64_t ox0 = std::max<int64_t>(0, floorDiv(ix + g.left - g.kw, g.sw) + 1);
        const int64_t ox1 = std::min(g.wo - 1, (ix + g.left) / g.sw);
        for (int64_t k = 0; k < g.c; k++) acc[k] = 0.0;
        for (int64_t oy = oy0; oy <= oy1; oy++) {
          const int64_t wy = iy - (oy * g.sh - g.top);
          if (wy < 0 || wy >= g.kh) continue;
          for (int64_t ox = ox0; ox <= ox1; ox++) {
            const int64_t wx = ix - (ox * g.sw - g.left);
            if (wx < 0 || wx >= g.kw) continue;
            const int64_t o = ((b * g.ho + oy) * g.wo + ox) * g.c;
            take(o, static_cast<int32_t>(wy * g.kw + wx), dy + o, acc.data());
          }
        }
        float* out = dx + ((b * g.h + iy) * g.w + ix) * g.c;
        for (int64_t k = 0; k < g.c; k++) out[k] = static_cast<float>(scale == 1.0 ? acc[k] : acc[k] * scale);
      }
    }
  });
}

// dx = dy where the cell is its window's first maximum, else 0, as 0.0 + dy in double (what gatherGrad computes
// for a cell in one window).
FER_SIMD void routeOut(const int32_t* p, const float* d, float* out, int32_t here, int64_t c) {
  for (int64_t k = 0; k < c; k++) out[k] = static_cast<float>(0.0 + (p[k] == here ? static_cast<double>(d[k]) : 0.0));
}

// MaxPoolGrad for disjoint windows (stride >= filter on both axes, e.g. 2x2/2): each cell lies in at most one window,
// so one pass per window finds its maxima and writes its cells; cells outside every window get 0. Same values as
// maxPositions + gatherGrad, without their position buffer (an int per output) and second pass.
void maxPoolGradDisjoint(const Geo& g, const float* x, const float* dy, float* dx) {
  std::vector<char> colIn(g.w, 0), rowIn(g.h, 0);
  for (int64_t ox = 0; ox < g.wo; ox++)
    for (int64_t ix = std::max<int64_t>(0, ox * g.sw - g.left); ix < std::min(g.w, ox * g.sw - g.left + g.kw); ix++)
      colIn[ix] = 1;
  for (int64_t oy = 0; oy < g.ho; oy++)
    for (int64_t iy = std::max<int64_t>(0, oy * g.sh - g.top); iy < std::min(g.h, oy * g.sh - g.top + g.kh); iy++)
      rowIn[iy] = 1;
  const int64_t c = g.c;
  const int64_t rowSize = g.w * c;
  for (int64_t b = 0; b < g.n; b++)
    for (int64_t iy = 0; iy < g.h; iy++)
      if (!rowIn[iy]) std::memset(dx + (b * g.h + iy) * rowSize, 0, rowSize * sizeof(float));
  parallelFor(g.n * g.ho, g.n * g.h * g.w * g.c, [&](int64_t lo, int64_t hi) {
    std::vector<float> m(c);
    std::vector<int32_t> p(c);
    for (int64_t r = lo; r < hi; r++) {
      const int64_t b = r / g.ho, oy = r % g.ho;
      const int64_t ry = oy * g.sh - g.top;
      const int64_t y0 = std::max<int64_t>(0, ry), y1 = std::min(g.h, ry + g.kh);
      for (int64_t iy = y0; iy < y1; iy++)
        for (int64_t ix = 0; ix < g.w; ix++)
          if (!colIn[ix]) std::memset(dx + ((b * g.h + iy) * g.w + ix) * c, 0, c * sizeof(float));
      for (int64_t ox = 0; ox < g.wo; ox++) {
        const int64_t rx = ox * g.sw - g.left;
        const int64_t x0 = std::max<int64_t>(0, rx), x1 = std::min(g.w, rx + g.kw);
        for (int64_t k = 0; k < c; k++) {
          m[k] = -std::numeric_limits<float>::infinity();
          p[k] = -1;
        }
        for (int64_t iy = y0; iy < y1; iy++)
          for (int64_t ix = x0; ix < x1; ix++)
            argmaxInto(x + ((b * g.h + iy) * g.w + ix) * c, m.data(), p.data(),
                       static_cast<int32_t>((iy - ry) * g.kw + (ix - rx)), c);
        const float* d = dy + ((b * g.ho + oy) * g.wo + ox) * c;
        for (int64_t iy = y0; iy < y1; iy++)
          for (int64_t ix = x0; ix < x1; ix++)
            routeOut(p.data(), d, dx + ((b * g.h + iy) * g.w + ix) * c,
                     static_cast<int32_t>((iy - ry) * g.kw + (ix - rx)), c);
      }
    }
  });
}

// poolGrad(kind: 0 max | 1 avg, dy, x (max only; else null), geometry[12], out)
napi_value PoolGrad(napi_env env, napi_callback_info info) {
  return entry(env, info, 5, [&](napi_value* argv) {
    const bool isMax = integer(env, argv[0], "kind") == 0;
    auto dy = typed<float>(env, argv[1], "dy");
    const Geo g = geometry(env, argv[3]);
    auto dx = typed<float>(env, argv[4], "out");
    if (dx.size != g.n * g.h * g.w * g.c || dy.size != g.n * g.ho * g.wo * g.c)
      throw Error{"fer-native poolGrad: sizes do not match the geometry"};
    const int64_t c = g.c;
    if (isMax) {
      auto x = typed<float>(env, argv[2], "x");
      if (x.size != dx.size) throw Error{"fer-native poolGrad: x does not match the geometry"};
      if (g.sh >= g.kh && g.sw >= g.kw) {
        maxPoolGradDisjoint(g, x.data, dy.data, dx.data);
        return;
      }
      std::vector<int32_t> pos(dy.size);
      maxPositions(g, x.data, pos.data());
      const int32_t* P = pos.data();
      gatherGrad(g, dy.data, dx.data, 1.0, [&](int64_t o, int32_t here, const float* d, double* acc) {
        routeInto(P + o, d, acc, here, c);
      });
    } else {
      // tfjs: 1 / (filterHeight * filterWidth) as a JS number.
      const double mult = 1.0 / static_cast<double>(g.kh * g.kw);
      gatherGrad(g, dy.data, dx.data, mult, [&](int64_t, int32_t, const float* d, double* acc) { addInto(d, acc, c); });
    }
  });
}

}  // namespace
}  // namespace ferops

void Register_pool(napi_env env, napi_value exports) {
  ferops::exportFn(env, exports, "opsPool", ferops::Pool);
  ferops::exportFn(env, exports, "opsPoolGrad", ferops::PoolGrad);
}
