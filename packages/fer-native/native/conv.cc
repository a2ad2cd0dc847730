// conv kernels (oneDNN). Filled in by the conv/matmul work; registers its JS functions on the addon's exports.
#include "common.h"

void Register_conv(napi_env env, napi_value exports) {}
