// Batched matrix products on oneDNN: C[b] = act(op(A[b]) · op(B[b]) + bias), op = optional transpose, read in place
// through strides. A batch of 1 on either side broadcasts.
#include <cstring>
#include <map>
#include <algorithm>
#include <memory>
#include <unordered_map>

#include "common.h"

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

struct MatMul {
  matmul::primitive_desc pd;
  matmul prim;
};

thread_local std::map<std::vector<int64_t>, std::unique_ptr<MatMul>> cache;

// Activation codes shared with src/kernels/matmul.ts (the same as conv's).
post_ops PostOps(int64_t act, float alpha) {
  post_ops ops;
  switch (act) {
    case 0: break;
    case 1: ops.append_eltwise(1.f, algorithm::eltwise_relu, 0.f, 0.f); break;
    case 2: ops.append_eltwise(1.f, algorithm::eltwise_clip, 0.f, 6.f); break;
    case 3: ops.append_eltwise(1.f, algorithm::eltwise_elu, 1.f, 0.f); break;
    case 4: ops.append_eltwise(1.f, algorithm::eltwise_logistic, 0.f, 0.f); break;
    case 5: ops.append_eltwise(1.f, algorithm::eltwise_relu, alpha, 0.f); break;
    default: throw fer::JsError("fer-native: unknown activation code " + std::to_string(act));
  }
  return ops;
}

memory::desc Operand(int64_t batch, int64_t rows, int64_t cols, bool transposed) {
  // Logical [batch, rows, cols]; stored [batch, cols, rows] when transposed.
  memory::dims strides = transposed ? memory::dims{rows * cols, 1, rows} : memory::dims{rows * cols, cols, 1};
  return memory::desc({batch, rows, cols}, dt::f32, strides);
}

// matmul(a, b, c, [batchA, batchB, M, K, N, transposeA, transposeB], bias | null, activation, alpha)
napi_value MatMulFn(napi_env env, const fer::Args& args) {
  fer::ExpectArgs(args, 7, "matmul");
  std::vector<int64_t> d = fer::Dims(env, args[3], "matmul geometry");
  if (d.size() != 7) throw fer::JsError("fer-native: matmul geometry must have 7 entries");
  const int64_t ba = d[0], bb = d[1], m = d[2], k = d[3], n = d[4];
  const bool ta = d[5] != 0, tb = d[6] != 0;
  for (int i = 0; i < 5; ++i) {
    if (d[i] < 1) throw fer::JsError("fer-native: matmul geometry entries must be positive");
  }
  if (ba != bb && ba != 1 && bb != 1) throw fer::JsError("fer-native: matmul batches must match or be 1");
  const int64_t batch = std::max(ba, bb);
  float* a = fer::F32(env, args[0], "a", ba * m * k);
  float* b = fer::F32(env, args[1], "b", bb * k * n);
  float* c = fer::F32(env, args[2], "c", batch * m * n);
  float* bias = fer::OptionalF32(env, args[4], "bias", n);
  int64_t act = fer::Int(env, args[5], "activation");
  float alpha = static_cast<float>(fer::Num(env, args[6], "alpha"));

  memory::desc a_md = Operand(ba, m, k, ta);
  memory::desc b_md = Operand(bb, k, n, tb);
  memory::desc c_md({batch, m, n}, dt::f32, tag::abc);
  memory::desc bias_md({1, 1, n}, dt::f32, tag::abc);

  std::vector<int64_t> key = d;
  key.push_back(bias != nullptr);
  key.push_back(act);
  int32_t alpha_bits;
  std::memcpy(&alpha_bits, &alpha, sizeof alpha_bits);
  key.push_back(alpha_bits);
  auto it = cache.find(key);
  MatMul* mm;
  if (it != cache.end()) {
    mm = it->second.get();
  } else {
    if (cache.size() >= 256) cache.clear();
    auto desc = bias ? matmul::desc(a_md, b_md, bias_md, c_md) : matmul::desc(a_md, b_md, c_md);
    primitive_attr attr;
    attr.set_scratchpad_mode(scratchpad_mode::user);
    attr.set_post_ops(PostOps(act, alpha));
    matmul::primitive_desc pd(desc, attr, fer::Engine());
    auto e = std::unique_ptr<MatMul>(new MatMul{pd, matmul(pd)});
    mm = e.get();
    cache[key] = std::move(e);
  }
  std::unordered_map<int, memory> margs = {
      {DNNL_ARG_SRC, memory(a_md, fer::Engine(), a)},
      {DNNL_ARG_WEIGHTS, memory(b_md, fer::Engine(), b)},
      {DNNL_ARG_DST, memory(c_md, fer::Engine(), c)},
      {DNNL_ARG_SCRATCHPAD, fer::ScratchpadMemory(mm->pd.scratchpad_desc())},
  };
  if (bias) margs.emplace(DNNL_ARG_BIAS, memory(bias_md, fer::Engine(), bias));
  mm->prim.execute(fer::Stream(), margs);
  fer::Stream().wait();
  return fer::Undefined(env);
}

}  // namespace

void Register_matmul(napi_env env, napi_value exports) { fer::SetFunction(env, exports, "matmul", MatMulFn); }
