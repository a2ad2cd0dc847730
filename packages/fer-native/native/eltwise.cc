// Element-wise kernels over float32 (unary, binary with NumPy broadcasting, comparisons, Select, AddN), with
// tfjs-backend-cpu's semantics: its JS kernels compute in double and store float32, so +, -, *, / and sqrt are done
// in float (identical after rounding) and everything else (exp, sigmoid, rsqrt, squared difference) in double.
#include <cmath>
#include <limits>

#include "ops_util.h"

// Hot loops get an AVX-512 and an AVX2 clone picked at load time (the addon is built for baseline x86-64); no FMA
// contraction, so a*b+c rounds twice as JS does.
#define FER_SIMD __attribute__((target_clones("avx512f", "avx2", "default"), optimize("fp-contract=off")))

namespace ferops {
namespace {

// Unary op codes; src/kernels/eltwise.ts mirrors them.
enum Unary : int {
  kRelu = 0,
  kSigmoid,
  kExp,
  kSqrt,
  kRsqrt,
  kSquare,
  kNeg,
  kStep,
  kAbs,
  kLog,
  kReciprocal,
  kRelu6,
  kTanh,
};

// Binary op codes (float32 → float32); src/kernels/eltwise.ts mirrors them.
enum Binary : int { kAdd = 0, kSub, kMul, kDiv, kMaximum, kMinimum, kSquaredDifference };

// Comparison codes (float32 → bool as uint8).
enum Compare : int { kEqual = 0, kNotEqual, kGreater, kGreaterEqual, kLess, kLessEqual };

const float kNaN = std::numeric_limits<float>::quiet_NaN();

// JS Math.max / Math.min: NaN if either is NaN, and +0 > -0.
inline float jsMax(float a, float b) {
  if (a != a || b != b) return kNaN;
  if (a > b) return a;
  if (b > a) return b;
  return std::signbit(a) ? b : a;
}
inline float jsMin(float a, float b) {
  if (a != a || b != b) return kNaN;
  if (a < b) return a;
  if (b < a) return b;
  return std::signbit(a) ? a : b;
}

struct OpRelu {
  static float f(float x, float) { return x != x ? x : (x > 0.f ? x : 0.f); }
};
struct OpRelu6 {
  static float f(float x, float) { return x != x ? x : (x > 0.f ? (x < 6.f ? x : 6.f) : 0.f); }
};
struct OpSigmoid {
  static float f(float x, float) { return static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(x)))); }
};
struct OpExp {
  static float f(float x, float) { return static_cast<float>(std::exp(static_cast<double>(x))); }
};
struct OpLog {
  static float f(float x, float) { return static_cast<float>(std::log(static_cast<double>(x))); }
};
struct OpTanh {
  static float f(float x, float) { return static_cast<float>(std::tanh(static_cast<double>(x))); }
};
struct OpSqrt {
  static float f(float x, float) { return std::sqrt(x); }
};
struct OpRsqrt {
  static float f(float x, float) { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(x))); }
};
struct OpSquare {
  static float f(float x, float) { return x * x; }
};
struct OpNeg {
  static float f(float x, float) { return -x; }
};
struct OpStep {
  static float f(float x, float alpha) { return x != x ? x : (x > 0.f ? 1.f : alpha); }
};
struct OpAbs {
  static float f(float x, float) { return std::fabs(x); }
};
struct OpReciprocal {
  static float f(float x, float) { return 1.f / x; }
};

template <typename Op>
FER_SIMD void unaryLoop(const float* x, float* y, int64_t n, float alpha) {
  for (int64_t i = 0; i < n; i++) y[i] = Op::f(x[i], alpha);
}

// Transcendental ops cost ~20 ns each in double: parallelise them from fewer elements.
template <typename Op>
void unaryRun(const float* x, float* y, int64_t n, float alpha, int64_t costFactor) {
  parallelFor(n, n * costFactor, [&](int64_t lo, int64_t hi) { unaryLoop<Op>(x + lo, y + lo, hi - lo, alpha); });
}

// unary(op, x: Float32Array, out: Float32Array, alpha)
napi_value Unary(napi_env env, napi_callback_info info) {
  return entry(env, info, 4, [&](napi_value* argv) {
    const int op = static_cast<int>(integer(env, argv[0], "op"));
    auto x = typed<float>(env, argv[1], "x");
    auto y = typed<float>(env, argv[2], "out");
    const float alpha = static_cast<float>(number(env, argv[3], "alpha"));
    if (x.size != y.size) throw Error{"fer-native unary: x and out differ in size"};
    const int64_t n = x.size;
    switch (op) {
      case kRelu: return unaryRun<OpRelu>(x.data, y.data, n, alpha, 1);
      case kRelu6: return unaryRun<OpRelu6>(x.data, y.data, n, alpha, 1);
      case kSigmoid: return unaryRun<OpSigmoid>(x.data, y.data, n, alpha, 16);
      case kExp: return unaryRun<OpExp>(x.data, y.data, n, alpha, 16);
      case kLog: return unaryRun<OpLog>(x.data, y.data, n, alpha, 16);
      case kTanh: return unaryRun<OpTanh>(x.data, y.data, n, alpha, 16);
      case kSqrt: return unaryRun<OpSqrt>(x.data, y.data, n, alpha, 2);
      case kRsqrt: return unaryRun<OpRsqrt>(x.data, y.data, n, alpha, 4);
      case kSquare: return unaryRun<OpSquare>(x.data, y.data, n, alpha, 1);
      case kNeg: return unaryRun<OpNeg>(x.data, y.data, n, alpha, 1);
      case kStep: return unaryRun<OpStep>(x.data, y.data, n, alpha, 1);
      case kAbs: return unaryRun<OpAbs>(x.data, y.data, n, alpha, 1);
      case kReciprocal: return unaryRun<OpReciprocal>(x.data, y.data, n, alpha, 2);
      default: throw Error{"fer-native unary: unknown op " + std::to_string(op)};
    }
  });
}

// ---- Broadcasting ----------------------------------------------------------------------------------------------

// An output iteration space with each operand's element strides (0 along broadcast dims), adjacent dims merged.
struct Bcast {
  int rank = 0;
  int64_t dims[8];
  int64_t sa[8];
  int64_t sb[8];
};

// NumPy broadcasting of a and b to out (shapes right-aligned). Returns false for rank > 8 (the caller falls back).
bool makeBcast(const std::vector<int64_t>& as, const std::vector<int64_t>& bs, const std::vector<int64_t>& os,
               Bcast& bc) {
  const int r = static_cast<int>(os.size());
  if (r > 8 || as.size() > os.size() || bs.size() > os.size()) return false;
  int64_t d[8], sa[8], sb[8];
  int64_t stA = 1, stB = 1;
  for (int i = r - 1; i >= 0; i--) {
    const int ia = i - (r - static_cast<int>(as.size())), ib = i - (r - static_cast<int>(bs.size()));
    const int64_t da = ia >= 0 ? as[ia] : 1, db = ib >= 0 ? bs[ib] : 1;
    if ((da != os[i] && da != 1) || (db != os[i] && db != 1)) return false;
    d[i] = os[i];
    sa[i] = da == 1 ? 0 : stA;
    sb[i] = db == 1 ? 0 : stB;
    stA *= da;
    stB *= db;
  }
  // Drop size-1 dims, then merge a dim into the one inside it when both operands step through them contiguously.
  int n = 0;
  for (int i = 0; i < r; i++) {
    if (d[i] == 1) continue;
    if (n > 0 && bc.sa[n - 1] == sa[i] * d[i] && bc.sb[n - 1] == sb[i] * d[i]) {
      bc.dims[n - 1] *= d[i];
      bc.sa[n - 1] = sa[i];
      bc.sb[n - 1] = sb[i];
    } else {
      bc.dims[n] = d[i];
      bc.sa[n] = sa[i];
      bc.sb[n] = sb[i];
      n++;
    }
  }
  if (n == 0) {
    bc.dims[0] = 1;
    bc.sa[0] = 0;
    bc.sb[0] = 0;
    n = 1;
  }
  bc.rank = n;
  return true;
}

// Visits output range [lo, hi) as runs along the innermost dim: f(outOffset, aOffset, bOffset, length).
template <typename F>
void forRuns(const Bcast& bc, int64_t lo, int64_t hi, F&& f) {
  const int r = bc.rank;
  int64_t coord[8];
  int64_t rem = lo, oa = 0, ob = 0;
  for (int i = r - 1; i >= 0; i--) {
    coord[i] = rem % bc.dims[i];
    rem /= bc.dims[i];
    oa += coord[i] * bc.sa[i];
    ob += coord[i] * bc.sb[i];
  }
  int64_t pos = lo;
  while (pos < hi) {
    const int64_t len = std::min(bc.dims[r - 1] - coord[r - 1], hi - pos);
    f(pos, oa, ob, len);
    pos += len;
    oa += len * bc.sa[r - 1];
    ob += len * bc.sb[r - 1];
    coord[r - 1] += len;
    for (int i = r - 1; i > 0 && coord[i] == bc.dims[i]; i--) {
      oa -= coord[i] * bc.sa[i];
      ob -= coord[i] * bc.sb[i];
      coord[i] = 0;
      coord[i - 1]++;
      oa += bc.sa[i - 1];
      ob += bc.sb[i - 1];
    }
  }
}

struct OpAdd {
  static float f(float a, float b) { return a + b; }
};
struct OpSub {
  static float f(float a, float b) { return a - b; }
};
struct OpMul {
  static float f(float a, float b) { return a * b; }
};
struct OpDiv {
  static float f(float a, float b) { return a / b; }
};
struct OpMaximum {
  static float f(float a, float b) { return jsMax(a, b); }
};
struct OpMinimum {
  static float f(float a, float b) { return jsMin(a, b); }
};
struct OpSquaredDifference {
  static float f(float a, float b) {
    const double d = static_cast<double>(a) - static_cast<double>(b);
    return static_cast<float>(d * d);
  }
};
struct CmpEqual {
  static uint8_t f(float a, float b) { return a == b; }
};
struct CmpNotEqual {
  static uint8_t f(float a, float b) { return a != b; }
};
struct CmpGreater {
  static uint8_t f(float a, float b) { return a > b; }
};
struct CmpGreaterEqual {
  static uint8_t f(float a, float b) { return a >= b; }
};
struct CmpLess {
  static uint8_t f(float a, float b) { return a < b; }
};
struct CmpLessEqual {
  static uint8_t f(float a, float b) { return a <= b; }
};

// Inner runs specialised on the operands' inner strides (1 = contiguous, 0 = broadcast) so they vectorise.
template <typename Op, typename O>
FER_SIMD void runVV(const float* a, const float* b, O* o, int64_t n) {
  for (int64_t i = 0; i < n; i++) o[i] = Op::f(a[i], b[i]);
}
template <typename Op, typename O>
FER_SIMD void runSV(float a, const float* b, O* o, int64_t n) {
  for (int64_t i = 0; i < n; i++) o[i] = Op::f(a, b[i]);
}
template <typename Op, typename O>
FER_SIMD void runVS(const float* a, float b, O* o, int64_t n) {
  for (int64_t i = 0; i < n; i++) o[i] = Op::f(a[i], b);
}

template <typename Op, typename O>
void binaryRun(const Bcast& bc, const float* a, const float* b, O* o, int64_t total, int64_t costFactor) {
  const int64_t ia = bc.sa[bc.rank - 1], ib = bc.sb[bc.rank - 1];
  parallelFor(total, total * costFactor, [&](int64_t lo, int64_t hi) {
    forRuns(bc, lo, hi, [&](int64_t po, int64_t pa, int64_t pb, int64_t len) {
      if (ia == 1 && ib == 1)
        runVV<Op, O>(a + pa, b + pb, o + po, len);
      else if (ia == 0 && ib == 1)
        runSV<Op, O>(a[pa], b + pb, o + po, len);
      else if (ia == 1 && ib == 0)
        runVS<Op, O>(a + pa, b[pb], o + po, len);
      else
        for (int64_t i = 0; i < len; i++) o[po + i] = Op::f(a[pa], b[pb]);
    });
  });
}

// binary(op, a, aShape, b, bShape, out, outShape) → true, or false when the shapes are beyond this kernel.
napi_value BinaryFn(napi_env env, napi_callback_info info) {
  napi_value result = nullptr;
  entry(env, info, 7, [&](napi_value* argv) {
    const int op = static_cast<int>(integer(env, argv[0], "op"));
    auto a = typed<float>(env, argv[1], "a");
    auto as = ints(env, argv[2], "aShape");
    auto b = typed<float>(env, argv[3], "b");
    auto bs = ints(env, argv[4], "bShape");
    auto o = typed<float>(env, argv[5], "out");
    auto os = ints(env, argv[6], "outShape");
    Bcast bc;
    bool ok = makeBcast(as, bs, os, bc) && product(as) == a.size && product(bs) == b.size && product(os) == o.size;
    if (ok) {
      const int64_t n = o.size;
      switch (op) {
        case kAdd: binaryRun<OpAdd>(bc, a.data, b.data, o.data, n, 1); break;
        case kSub: binaryRun<OpSub>(bc, a.data, b.data, o.data, n, 1); break;
        case kMul: binaryRun<OpMul>(bc, a.data, b.data, o.data, n, 1); break;
        case kDiv: binaryRun<OpDiv>(bc, a.data, b.data, o.data, n, 2); break;
        case kMaximum: binaryRun<OpMaximum>(bc, a.data, b.data, o.data, n, 1); break;
        case kMinimum: binaryRun<OpMinimum>(bc, a.data, b.data, o.data, n, 1); break;
        case kSquaredDifference: binaryRun<OpSquaredDifference>(bc, a.data, b.data, o.data, n, 1); break;
        default: throw Error{"fer-native binary: unknown op " + std::to_string(op)};
      }
    }
    napi_get_boolean(env, ok, &result);
  });
  return result;
}

// compare(op, a, aShape, b, bShape, out: Uint8Array, outShape) → true, or false when the shapes are beyond it.
napi_value CompareFn(napi_env env, napi_callback_info info) {
  napi_value result = nullptr;
  entry(env, info, 7, [&](napi_value* argv) {
    const int op = static_cast<int>(integer(env, argv[0], "op"));
    auto a = typed<float>(env, argv[1], "a");
    auto as = ints(env, argv[2], "aShape");
    auto b = typed<float>(env, argv[3], "b");
    auto bs = ints(env, argv[4], "bShape");
    auto o = typed<uint8_t>(env, argv[5], "out");
    auto os = ints(env, argv[6], "outShape");
    Bcast bc;
    bool ok = makeBcast(as, bs, os, bc) && product(as) == a.size && product(bs) == b.size && product(os) == o.size;
    if (ok) {
      const int64_t n = o.size;
      switch (op) {
        case kEqual: binaryRun<CmpEqual>(bc, a.data, b.data, o.data, n, 1); break;
        case kNotEqual: binaryRun<CmpNotEqual>(bc, a.data, b.data, o.data, n, 1); break;
        case kGreater: binaryRun<CmpGreater>(bc, a.data, b.data, o.data, n, 1); break;
        case kGreaterEqual: binaryRun<CmpGreaterEqual>(bc, a.data, b.data, o.data, n, 1); break;
        case kLess: binaryRun<CmpLess>(bc, a.data, b.data, o.data, n, 1); break;
        case kLessEqual: binaryRun<CmpLessEqual>(bc, a.data, b.data, o.data, n, 1); break;
        default: throw Error{"fer-native compare: unknown op " + std::to_string(op)};
      }
    }
    napi_get_boolean(env, ok, &result);
  });
  return result;
}

FER_SIMD void selectLoop(const uint8_t* c, const float* a, const float* b, float* o, int64_t n) {
  for (int64_t i = 0; i < n; i++) o[i] = c[i] == 1 ? a[i] : b[i];
}

// select(cond: Uint8Array, t, e, out): element-wise, all the same size (the caller falls back for a rank-1 condition
// over rows, where tfjs-backend-cpu's kernel has its own behaviour).
napi_value Select(napi_env env, napi_callback_info info) {
  return entry(env, info, 4, [&](napi_value* argv) {
    auto c = typed<uint8_t>(env, argv[0], "condition");
    auto a = typed<float>(env, argv[1], "t");
    auto b = typed<float>(env, argv[2], "e");
    auto o = typed<float>(env, argv[3], "out");
    if (a.size != o.size || b.size != o.size || c.size != o.size) throw Error{"fer-native select: inconsistent sizes"};
    parallelFor(o.size, o.size, [&](int64_t lo, int64_t hi) {
      selectLoop(c.data + lo, a.data + lo, b.data + lo, o.data + lo, hi - lo);
    });
  });
}

// addN(inputs: Float32Array[], out): left-to-right float32 sums (the cpu kernel accumulates into a Float32Array).
napi_value AddN(napi_env env, napi_callback_info info) {
  return entry(env, info, 2, [&](napi_value* argv) {
    uint32_t k = 0;
    check(env, napi_get_array_length(env, argv[0], &k), "inputs");
    std::vector<const float*> in(k);
    auto o = typed<float>(env, argv[1], "out");
    for (uint32_t i = 0; i < k; i++) {
      napi_value e;
      check(env, napi_get_element(env, argv[0], i, &e), "inputs");
      auto v = typed<float>(env, e, "inputs[i]");
      if (v.size != o.size) throw Error{"fer-native addN: inputs differ in size"};
      in[i] = v.data;
    }
    parallelFor(o.size, o.size * k, [&](int64_t lo, int64_t hi) {
      for (int64_t j = lo; j < hi; j++) {
        float s = 0.f;
        for (uint32_t i = 0; i < k; i++) s += in[i][j];
        o.data[j] = s;
      }
    });
  });
}

// Relu's gradient in one pass: dy·step(x) exactly as tfjs computes it (Step then Multiply): the factor is 1 where
// x > 0, NaN where x is NaN and 0 elsewhere, so −0, NaN and ±inf·0 come out the same.
FER_SIMD void reluGradLoop(const float* dy, const float* x, float* o, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float s = x[i] > 0.f ? 1.f : (x[i] != x[i] ? x[i] : 0.f);
    o[i] = dy[i] * s;
  }
}

// reluGrad(dy, x, out): all the same size.
napi_value ReluGrad(napi_env env, napi_callback_info info) {
  return entry(env, info, 3, [&](napi_value* argv) {
    auto dy = typed<float>(env, argv[0], "dy");
    auto x = typed<float>(env, argv[1], "x");
    auto o = typed<float>(env, argv[2], "out");
    if (dy.size != o.size || x.size != o.size) throw Error{"fer-native reluGrad: dy, x and out differ in size"};
    parallelFor(o.size, o.size, [&](int64_t lo, int64_t hi) {
      reluGradLoop(dy.data + lo, x.data + lo, o.data + lo, hi - lo);
    });
  });
}

// Max's gradient as fer-backend computes it, dy·(1 − step(y − x)) with dy and y broadcast from the reduced shape,
// in one pass: each step rounds as the float32 ops do (Sub, Step with NaN passing through, Sub from 1, Multiply).
FER_SIMD void maxGradRow(const float* dy, const float* y, int64_t kStride, const float* x, float* o, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float d = y[i * kStride] - x[i];
    const float s = d > 0.f ? 1.f : (d != d ? d : 0.f);
    o[i] = dy[i * kStride] * (1.f - s);
  }
}

// maxGrad(dy, y, x, xShape, keptShape, out): dy and y have keptShape (xShape with the reduced axes set to 1).
napi_value MaxGrad(napi_env env, napi_callback_info info) {
  return entry(env, info, 6, [&](napi_value* argv) {
    auto dy = typed<float>(env, argv[0], "dy");
    auto y = typed<float>(env, argv[1], "y");
    auto x = typed<float>(env, argv[2], "x");
    const std::vector<int64_t> xs = ints(env, argv[3], "xShape");
    const std::vector<int64_t> ks = ints(env, argv[4], "keptShape");
    auto o = typed<float>(env, argv[5], "out");
    bool ok = !xs.empty() && xs.size() == ks.size() && product(xs) == x.size && o.size == x.size &&
              product(ks) == dy.size && y.size == dy.size;
    for (size_t a = 0; ok && a < xs.size(); a++) ok = ks[a] == xs[a] || ks[a] == 1;
    if (!ok) throw Error{"fer-native maxGrad: dy and y must have x's shape with the reduced axes set to 1"};
    const int64_t rank = static_cast<int64_t>(xs.size());
    const int64_t inner = xs.back();
    const int64_t kStride = ks.back() == 1 ? 0 : 1;
    // Row-major strides of the kept shape; a reduced axis (size 1 in ks, larger in xs) does not advance.
    std::vector<int64_t> kst(rank, 0);
    for (int64_t a = rank - 1, st = 1; a >= 0; a--) {
      kst[a] = ks[a] == 1 ? 0 : st;
      st *= ks[a];
    }
    const int64_t rows = x.size / std::max<int64_t>(inner, 1);
    parallelFor(rows, x.size * 2, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; r++) {
        int64_t rem = r, koff = 0;
        for (int64_t a = rank - 2; a >= 0; a--) {
          koff += (rem % xs[a]) * kst[a];
          rem /= xs[a];
        }
        maxGradRow(dy.data + koff, y.data + koff, kStride, x.data + r * inner, o.data + r * inner, inner);
      }
    });
  });
}

}  // namespace
}  // namespace ferops

void Register_eltwise(napi_env env, napi_value exports) {
  ferops::exportFn(env, exports, "opsUnary", ferops::Unary);
  ferops::exportFn(env, exports, "opsBinary", ferops::BinaryFn);
  ferops::exportFn(env, exports, "opsCompare", ferops::CompareFn);
  ferops::exportFn(env, exports, "opsSelect", ferops::Select);
  ferops::exportFn(env, exports, "opsAddN", ferops::AddN);
  ferops::exportFn(env, exports, "opsReluGrad", ferops::ReluGrad);
  ferops::exportFn(env, exports, "opsMaxGrad", ferops::MaxGrad);
}
