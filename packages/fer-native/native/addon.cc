// Module entry: registers every kernel group. One line per group; each lives in native/<group>.cc.
#include <omp.h>

#include "common.h"

void Register_conv(napi_env env, napi_value exports);
void Register_matmul(napi_env env, napi_value exports);
void Register_eltwise(napi_env env, napi_value exports);
void Register_reduce(napi_env env, napi_value exports);
void Register_pool(napi_env env, napi_value exports);
void Register_batchnorm(napi_env env, napi_value exports);
void Register_layout(napi_env env, napi_value exports);

namespace {

// info() -> { onednn: '2.6.3', isa: 'avx512_core_bf16', threads: 2 }
napi_value Info(napi_env env, const fer::Args&) {
  const dnnl_version_t* v = dnnl_version();
  napi_value obj;
  napi_create_object(env, &obj);
  napi_set_named_property(env, obj, "onednn",
                          fer::String(env, std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                                               std::to_string(v->patch)));
  const char* isa = "unknown";
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: isa = "sse41"; break;
    case dnnl::cpu_isa::avx: isa = "avx"; break;
    case dnnl::cpu_isa::avx2: isa = "avx2"; break;
    case dnnl::cpu_isa::avx512_core: isa = "avx512_core"; break;
    case dnnl::cpu_isa::avx512_core_vnni: isa = "avx512_core_vnni"; break;
    case dnnl::cpu_isa::avx512_core_bf16: isa = "avx512_core_bf16"; break;
    case dnnl::cpu_isa::avx512_core_amx: isa = "avx512_core_amx"; break;
    default: break;
  }
  napi_set_named_property(env, obj, "isa", fer::String(env, isa));
  napi_set_named_property(env, obj, "threads", fer::Number(env, omp_get_max_threads()));
  return obj;
}

// setThreads(n): OpenMP threads for oneDNN and our own loops.
napi_value SetThreads(napi_env env, const fer::Args& args) {
  fer::ExpectArgs(args, 1, "setThreads");
  int64_t n = fer::Int(env, args[0], "threads");
  if (n < 1) throw fer::JsError("fer-native: setThreads expects a positive integer, got " + std::to_string(n));
  omp_set_num_threads(static_cast<int>(n));
  return fer::Undefined(env);
}

napi_value Init(napi_env env, napi_value exports) {
  try {
    fer::SetFunction(env, exports, "info", Info);
    fer::SetFunction(env, exports, "setThreads", SetThreads);
    Register_conv(env, exports);
    Register_matmul(env, exports);
    Register_eltwise(env, exports);
    Register_reduce(env, exports);
    Register_pool(env, exports);
    Register_batchnorm(env, exports);
    Register_layout(env, exports);
  } catch (const std::exception& e) {
    napi_throw_error(env, nullptr, e.what());
  }
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
