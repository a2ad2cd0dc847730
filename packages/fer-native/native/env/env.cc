// A separate, OpenMP-free addon (build/fer_env.node) that sets and unsets real environment variables. libgomp reads
// its settings (GOMP_SPINCOUNT) from the C environment once, when fer_native.node loads it; in a worker thread
// process.env is a JS copy that native code never sees, so src/addon.ts sets them through this first.
#include <node_api.h>

#include <cstdlib>
#include <string>

namespace {

std::string arg(napi_env env, napi_value v) {
  size_t n = 0;
  napi_get_value_string_utf8(env, v, nullptr, 0, &n);
  std::string s(n, '\0');
  napi_get_value_string_utf8(env, v, &s[0], n + 1, &n);
  return s;
}

// setenv(name, value | undefined): value undefined unsets name.
napi_value SetEnv(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  napi_valuetype t = napi_undefined;
  if (argc > 1) napi_typeof(env, argv[1], &t);
  const std::string name = arg(env, argv[0]);
  if (t == napi_string)
    setenv(name.c_str(), arg(env, argv[1]).c_str(), 1);
  else
    unsetenv(name.c_str());
  return nullptr;
}

}  // namespace

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "setenv", NAPI_AUTO_LENGTH, SetEnv, nullptr, &fn);
  napi_set_named_property(env, exports, "setenv", fn);
  return exports;
}
