// SPDX-License-Identifier: Apache-2.0
#ifndef VERDICT_TELEMETRY_ADDON_H
#define VERDICT_TELEMETRY_ADDON_H
#include <node_api.h>

/* Adds the kernel telemetry functions (kt*) to the addon's exports. */
void kt_register(napi_env env, napi_value exports);

#endif
