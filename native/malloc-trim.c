// trim(): glibc's malloc_trim(0) on a libuv pool thread, resolving to whether memory went back to the
// kernel. glibc returns only the top of an arena by itself; malloc_trim(0) also releases the free pages
// inside it, where the native memory of finished HTTP/2 streams and buffers lies after a full GC
// (docs/memory.md, section 8). Built only against glibc: elsewhere the module exports nothing.
#include <node_api.h>
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int released;
} trim_job;

static void run_trim(napi_env env, void *data) {
  trim_job *job = data;
  job->released = malloc_trim(0);
}

static void settle(napi_env env, napi_status status, void *data) {
  trim_job *job = data;
  napi_value value;
  if (status == napi_ok && napi_get_boolean(env, job->released != 0, &value) == napi_ok) {
    napi_resolve_deferred(env, job->deferred, value);
  } else {
    napi_value message;
    napi_create_string_utf8(env, "malloc_trim did not run", NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &value);
    napi_reject_deferred(env, job->deferred, value);
  }
  napi_delete_async_work(env, job->work);
  free(job);
}

static napi_value trim(napi_env env, napi_callback_info info) {
  napi_value promise, name;
  trim_job *job = calloc(1, sizeof *job);
  if (job == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "verdict:malloc_trim", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, run_trim, settle, job, &job->work) != napi_ok) {
    free(job);
    napi_throw_error(env, "EADDON", "malloc_trim could not be queued");
    return NULL;
  }
  if (napi_queue_async_work(env, job->work) != napi_ok) {
    napi_delete_async_work(env, job->work);
    free(job);
    napi_throw_error(env, "EADDON", "malloc_trim could not be queued");
    return NULL;
  }
  return promise;
}
#endif

NAPI_MODULE_INIT() {
#if defined(__GLIBC__)
  napi_value fn;
  if (napi_create_function(env, "trim", NAPI_AUTO_LENGTH, trim, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "trim", fn) != napi_ok)
    return NULL;
#endif
  return exports;
}
