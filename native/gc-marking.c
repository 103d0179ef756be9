// start(bytes): asks V8 to start incremental marking now, through the one door N-API opens to its GC
// heuristics. Reporting `bytes` of external memory past V8's external-memory soft limit (64 MiB above what
// the last full GC left) makes V8 start incremental marking if it is not already running; the same bytes
// are taken back at once, so `process.memoryUsage().external` never shows them. `bytes` must stay under
// half of V8's old-generation maximum, past which V8 collects atomically instead (src/cli/gc-marking.ts
// picks it). Marking then runs in small steps on the main thread and ends in a full GC whose pause holds
// the external strings and survivors of the Checks since the last one (docs/memory.md, section 9).
#include <node_api.h>

static napi_value start(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int64_t bytes, total;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int64(env, argv[0], &bytes) != napi_ok || bytes <= 0) {
    napi_throw_type_error(env, "EARG", "start(bytes) needs a positive byte count");
    return NULL;
  }
  if (napi_adjust_external_memory(env, bytes, &total) != napi_ok ||
      napi_adjust_external_memory(env, -bytes, &total) != napi_ok) {
    napi_throw_error(env, "EADDON", "external memory could not be reported");
  }
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "start", NAPI_AUTO_LENGTH, start, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "start", fn) != napi_ok)
    return NULL;
  return exports;
}
