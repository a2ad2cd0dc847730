// 2-D convolutions on oneDNN: forward (with bias and an eltwise post-op), backward data and backward weights.
// tfjs layouts are used in place: activations NHWC, filters HWIO ([kh, kw, in, out]); depthwise filters
// [kh, kw, in, multiplier] are grouped weights (groups = in). oneDNN picks its weights layout (format_tag::any); the
// filter is reordered into a buffer kept in the cache entry (filters are small next to activations).
//
// Every call takes a geometry array computed by tfjs' computeConv2DInfo on the JS side:
//   [N, H, W, C, KH, KW, O, OH, OW, SH, SW, DH, DW, padTop, padLeft, padBottom, padRight, groups]
#include <cstring>
#include <map>
#include <unordered_map>
#include <memory>

#include "common.h"

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

struct Geometry {
  int64_t n, h, w, c, kh, kw, o, oh, ow, sh, sw, dh, dw, pt, pl, pb, pr, g;
  std::vector<int64_t> key;

  memory::desc Src() const { return memory::desc({n, c, h, w}, dt::f32, tag::nhwc); }
  memory::desc Dst() const { return memory::desc({n, o, oh, ow}, dt::f32, tag::nhwc); }
  memory::dims WeiDims() const {
    return g == 1 ? memory::dims{o, c, kh, kw} : memory::dims{g, o / g, c / g, kh, kw};
  }
  memory::desc WeiUser() const { return memory::desc(WeiDims(), dt::f32, g == 1 ? tag::hwio : tag::hwigo); }
  memory::desc WeiAny() const { return memory::desc(WeiDims(), dt::f32, tag::any); }
  memory::dims Strides() const { return {sh, sw}; }
  memory::dims Dilates() const { return {dh - 1, dw - 1}; }  // oneDNN counts dilation from 0
  memory::dims PadL() const { return {pt, pl}; }
  memory::dims PadR() const { return {pb, pr}; }
};

Geometry ParseGeometry(napi_env env, napi_value value) {
  std::vector<int64_t> d = fer::Dims(env, value, "conv geometry");
  if (d.size() != 18) throw fer::JsError("fer-native: conv geometry must have 18 entries, got " + std::to_string(d.size()));
  Geometry g{d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11], d[12], d[13], d[14], d[15], d[16], d[17], d};
  for (int i = 0; i < 13; ++i) {
    if (d[i] < 1) throw fer::JsError("fer-native: conv geometry entry " + std::to_string(i) + " must be positive");
  }
  if (g.g < 1 || g.c % g.g != 0 || g.o % g.g != 0) throw fer::JsError("fer-native: conv groups must divide channels");
  // oneDNN's output-size rule must agree with tfjs': the JS side falls back to cpu's kernel otherwise.
  if ((g.h + g.pt + g.pb - ((g.kh - 1) * g.dh + 1)) / g.sh + 1 != g.oh ||
      (g.w + g.pl + g.pr - ((g.kw - 1) * g.dw + 1)) / g.sw + 1 != g.ow) {
    throw fer::JsError("fer-native: conv geometry is inconsistent (output size does not follow from the padding)");
  }
  return g;
}

primitive_attr Attr(const post_ops& ops = post_ops()) {
  primitive_attr attr;
  attr.set_scratchpad_mode(scratchpad_mode::user);
  attr.set_post_ops(ops);
  return attr;
}

convolution_forward::primitive_desc ForwardPd(const Geometry& g, bool bias, const post_ops& ops) {
  auto d = bias ? convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct, g.Src(),
                                            g.WeiAny(), memory::desc({g.o}, dt::f32, tag::a), g.Dst(), g.Strides(),
                                            g.Dilates(), g.PadL(), g.PadR())
                : convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct, g.Src(),
                                            g.WeiAny(), g.Dst(), g.Strides(), g.Dilates(), g.PadL(), g.PadR());
  return convolution_forward::primitive_desc(d, Attr(ops), fer::Engine());
}

// Filter in tfjs layout -> the primitive's layout (a no-op view when they agree).
struct WeightsIn {
  memory::desc user, want;
  bool needs_reorder = false;
  reorder prim;
  fer::Buffer buffer;

  void Init(const memory::desc& user_md, const memory::desc& want_md) {
    user = user_md;
    want = want_md;
    needs_reorder = user != want;
    if (needs_reorder) prim = reorder(memory(user, fer::Engine(), nullptr), memory(want, fer::Engine(), nullptr));
  }
  memory Get(float* data) {
    memory user_mem(user, fer::Engine(), data);
    if (!needs_reorder) return user_mem;
    memory want_mem(want, fer::Engine(), buffer.Get(want.get_size()));
    prim.execute(fer::Stream(), user_mem, want_mem);
    return want_mem;
  }
};

struct Forward {
  convolution_forward::primitive_desc pd;
  convolution_forward prim;
  WeightsIn weights;
};

struct BackwardData {
  convolution_backward_data::primitive_desc pd;
  convolution_backward_data prim;
  WeightsIn weights;
};

struct BackwardWeights {
  convolution_backward_weights::primitive_desc pd;
  convolution_backward_weights prim;
  bool needs_reorder = false;
  reorder out_reorder;
  fer::Buffer buffer;
};

// Primitive caches keyed by geometry (+ fused options). Shapes in a training run are few; the bound only guards
// against an unbounded stream of distinct shapes.
template <typename T>
class Cache {
 public:
  T* Find(const std::vector<int64_t>& key) {
    auto it = map_.find(key);
    return it == map_.end() ? nullptr : it->second.get();
  }
  T* Put(const std::vector<int64_t>& key, std::unique_ptr<T> v) {
    if (map_.size() >= 256) map_.clear();
    T* raw = v.get();
    map_[key] = std::move(v);
    return raw;
  }

 private:
  std::map<std::vector<int64_t>, std::unique_ptr<T>> map_;
};

thread_local Cache<Forward> forward_cache;
thread_local Cache<BackwardData> backward_data_cache;
thread_local Cache<BackwardWeights> backward_weights_cache;

// Activation codes shared with src/kernels/conv.ts.
enum Activation { kLinear = 0, kRelu = 1, kRelu6 = 2, kElu = 3, kSigmoid = 4, kLeakyRelu = 5 };

post_ops PostOps(int64_t act, float alpha) {
  post_ops ops;
  switch (act) {
    case kLinear: break;
    case kRelu: ops.append_eltwise(1.f, algorithm::eltwise_relu, 0.f, 0.f); break;
    case kRelu6: ops.append_eltwise(1.f, algorithm::eltwise_clip, 0.f, 6.f); break;
    case kElu: ops.append_eltwise(1.f, algorithm::eltwise_elu, 1.f, 0.f); break;
    case kSigmoid: ops.append_eltwise(1.f, algorithm::eltwise_logistic, 0.f, 0.f); break;
    case kLeakyRelu: ops.append_eltwise(1.f, algorithm::eltwise_relu, alpha, 0.f); break;
    default: throw fer::JsError("fer-native: unknown activation code " + std::to_string(act));
  }
  return ops;
}

// conv2d(x, filter, y, geometry, bias | null, activation, alpha): y = act(conv(x, filter) + bias).
napi_value Conv2d(napi_env env, const fer::Args& args) {
  fer::ExpectArgs(args, 7, "conv2d");
  Geometry g = ParseGeometry(env, args[3]);
  float* x = fer::F32(env, args[0], "x", g.n * g.h * g.w * g.c);
  float* w = fer::F32(env, args[1], "filter", g.kh * g.kw * (g.c / g.g) * g.o);
  float* y = fer::F32(env, args[2], "y", g.n * g.oh * g.ow * g.o);
  float* bias = fer::OptionalF32(env, args[4], "bias", g.o);
  int64_t act = fer::Int(env, args[5], "activation");
  float alpha = static_cast<float>(fer::Num(env, args[6], "alpha"));

  std::vector<int64_t> key = g.key;
  key.push_back(bias != nullptr);
  key.push_back(act);
  int32_t alpha_bits;
  std::memcpy(&alpha_bits, &alpha, sizeof alpha_bits);
  key.push_back(alpha_bits);
  Forward* f = forward_cache.Find(key);
  if (!f) {
    auto pd = ForwardPd(g, bias != nullptr, PostOps(act, alpha));
    auto e = std::unique_ptr<Forward>(new Forward{pd, convolution_forward(pd), {}});
    e->weights.Init(g.WeiUser(), pd.weights_desc());
    f = forward_cache.Put(key, std::move(e));
  }
  std::unordered_map<int, memory> margs = {
      {DNNL_ARG_SRC, memory(g.Src(), fer::Engine(), x)},
      {DNNL_ARG_WEIGHTS, f->weights.Get(w)},
      {DNNL_ARG_DST, memory(g.Dst(), fer::Engine(), y)},
      {DNNL_ARG_SCRATCHPAD, fer::ScratchpadMemory(f->pd.scratchpad_desc())},
  };
  if (bias) margs.emplace(DNNL_ARG_BIAS, memory(memory::desc({g.o}, dt::f32, tag::a), fer::Engine(), bias));
  f->prim.execute(fer::Stream(), margs);
  fer::Stream().wait();
  return fer::Undefined(env);
}

// conv2dBackpropInput(dy, filter, dx, geometry): dx = conv^T(dy, filter), geometry of the forward conv.
napi_value Conv2dBackpropInput(napi_env env, const fer::Args& args) {
  fer::ExpectArgs(args, 4, "conv2dBackpropInput");
  Geometry g = ParseGeometry(env, args[3]);
  float* dy = fer::F32(env, args[0], "dy", g.n * g.oh * g.ow * g.o);
  float* w = fer::F32(env, args[1], "filter", g.kh * g.kw * (g.c / g.g) * g.o);
  float* dx = fer::F32(env, args[2], "dx", g.n * g.h * g.w * g.c);

  BackwardData* b = backward_data_cache.Find(g.key);
  if (!b) {
    auto hint = ForwardPd(g, false, post_ops());
    convolution_backward_data::desc d(algorithm::convolution_direct, g.Src(), g.WeiAny(), g.Dst(), g.Strides(),
                                      g.Dilates(), g.PadL(), g.PadR());
    convolution_backward_data::primitive_desc pd(d, Attr(), fer::Engine(), hint);
    auto e = std::unique_ptr<BackwardData>(new BackwardData{pd, convolution_backward_data(pd), {}});
    e->weights.Init(g.WeiUser(), pd.weights_desc());
    b = backward_data_cache.Put(g.key, std::move(e));
  }
  b->prim.execute(fer::Stream(), {
                                     {DNNL_ARG_DIFF_DST, memory(g.Dst(), fer::Engine(), dy)},
                                     {DNNL_ARG_WEIGHTS, b->weights.Get(w)},
                                     {DNNL_ARG_DIFF_SRC, memory(g.Src(), fer::Engine(), dx)},
                                     {DNNL_ARG_SCRATCHPAD, fer::ScratchpadMemory(b->pd.scratchpad_desc())},
                                 });
  fer::Stream().wait();
  return fer::Undefined(env);
}

// conv2dBackpropFilter(x, dy, dw, geometry): dw = the filter gradient, in tfjs' [kh, kw, in, out] layout.
napi_value Conv2dBackpropFilter(napi_env env, const fer::Args& args) {
  fer::ExpectArgs(args, 4, "conv2dBackpropFilter");
  Geometry g = ParseGeometry(env, args[3]);
  float* x = fer::F32(env, args[0], "x", g.n * g.h * g.w * g.c);
  float* dy = fer::F32(env, args[1], "dy", g.n * g.oh * g.ow * g.o);
  float* dw = fer::F32(env, args[2], "dw", g.kh * g.kw * (g.c / g.g) * g.o);

  BackwardWeights* b = backward_weights_cache.Find(g.key);
  if (!b) {
    auto hint = ForwardPd(g, false, post_ops());
    convolution_backward_weights::desc d(algorithm::convolution_direct, g.Src(), g.WeiAny(), g.Dst(), g.Strides(),
                                         g.Dilates(), g.PadL(), g.PadR());
    convolution_backward_weights::primitive_desc pd(d, Attr(), fer::Engine(), hint);
    auto e = std::unique_ptr<BackwardWeights>(new BackwardWeights{pd, convolution_backward_weights(pd)});
    e->needs_reorder = pd.diff_weights_desc() != g.WeiUser();
    if (e->needs_reorder) {
      e->out_reorder = reorder(memory(pd.diff_weights_desc(), fer::Engine(), nullptr),
                               memory(g.WeiUser(), fer::Engine(), nullptr));
    }
    b = backward_weights_cache.Put(g.key, std::move(e));
  }
  memory user(g.WeiUser(), fer::Engine(), dw);
  memory diff = b->needs_reorder ? memory(b->pd.diff_weights_desc(), fer::Engine(),
                                          b->buffer.Get(b->pd.diff_weights_desc().get_size()))
                                 : user;
  b->prim.execute(fer::Stream(), {
                                     {DNNL_ARG_SRC, memory(g.Src(), fer::Engine(), x)},
                                     {DNNL_ARG_DIFF_DST, memory(g.Dst(), fer::Engine(), dy)},
                                     {DNNL_ARG_DIFF_WEIGHTS, diff},
                                     {DNNL_ARG_SCRATCHPAD, fer::ScratchpadMemory(b->pd.scratchpad_desc())},
                                 });
  if (b->needs_reorder) b->out_reorder.execute(fer::Stream(), diff, user);
  fer::Stream().wait();
  return fer::Undefined(env);
}

}  // namespace

void Register_conv(napi_env env, napi_value exports) {
  fer::SetFunction(env, exports, "conv2d", Conv2d);
  fer::SetFunction(env, exports, "conv2dBackpropInput", Conv2dBackpropInput);
  fer::SetFunction(env, exports, "conv2dBackpropFilter", Conv2dBackpropFilter);
}
