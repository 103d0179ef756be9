// SPDX-License-Identifier: Apache-2.0
/*
 * The kernel telemetry half of the addon: loads bpf/kernel-telemetry.bpf.o, attaches its programs (the
 * connect and sockops programs to a cgroup v2 group, the reset tracepoint globally), and reads the
 * aggregates in batches, summing the per-CPU copies here so JS gets one value per key. No interpretation:
 * src/kerneltelemetry/telemetry-layout.ts decodes. Errors throw with `code` "EBPF_KT_<step>" and `errno`.
 */
#define NAPI_VERSION 8
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <node_api.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "addon-common.h"
#include "../kernel-telemetry.h"
#include "telemetry-addon.h"

#define KT_LINKS 8
#define KT_READ_CHUNK 1024
#define KT_READ_MAX (1u << 22)

static const char *KT_PINNED[] = {"conn_stats", "health"};
#define KT_NPINNED 2

struct kt_handle {
	struct bpf_object *obj;
	struct bpf_link *links[KT_LINKS];
	int stats_fd;
	int health_fd;
	int cgroup_fd;
	struct pin_set pins; /* what ktLoad pinned; only those pins are removed on close */
};

static napi_value kt_throw_err(napi_env env, const struct addon_err *e)
{
	return addon_throw(env, "EBPF_KT_", "kernel telemetry ", e);
}

static napi_value kt_throw(napi_env env, const char *step, int err)
{
	struct addon_err e;
	addon_fail(&e, step, err, "%s", strerror(err < 0 ? -err : err));
	return kt_throw_err(env, &e);
}

static void kt_detach_links(struct kt_handle *h)
{
	for (int i = 0; i < KT_LINKS; i++) {
		if (h->links[i])
			bpf_link__destroy(h->links[i]);
		h->links[i] = NULL;
	}
	if (h->cgroup_fd >= 0)
		close(h->cgroup_fd);
	h->cgroup_fd = -1;
}

static void kt_close_handle(struct kt_handle *h)
{
	kt_detach_links(h);
	unpin_maps(&h->pins, KT_PINNED, KT_NPINNED);
	if (h->obj)
		bpf_object__close(h->obj);
	else {
		if (h->stats_fd >= 0)
			close(h->stats_fd);
		if (h->health_fd >= 0)
			close(h->health_fd);
	}
	h->obj = NULL;
	h->stats_fd = h->health_fd = -1;
}

static void kt_finalize(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)hint;
	kt_close_handle(data);
	free(data);
}

static struct kt_handle *kt_new(void)
{
	struct kt_handle *h = calloc(1, sizeof *h);
	if (h) {
		h->stats_fd = h->health_fd = h->cgroup_fd = -1;
		pin_set_init(&h->pins);
	}
	return h;
}

static int kt_string(napi_env env, napi_value v, char *buf, size_t len)
{
	size_t n;
	return napi_get_value_string_utf8(env, v, buf, len, &n) == napi_ok && n > 0 && n < len - 1 ? 0 : -1;
}

static struct kt_handle *kt_get(napi_env env, napi_value v)
{
	void *data = NULL;
	if (napi_get_value_external(env, v, &data) != napi_ok || !data) {
		napi_throw_type_error(env, NULL, "expected a kernel telemetry handle");
		return NULL;
	}
	struct kt_handle *h = data;
	if (h->stats_fd < 0) {
		napi_throw_error(env, "EBPF_KT_CLOSED", "kernel telemetry handle is closed");
		return NULL;
	}
	return h;
}

static napi_value kt_wrap(napi_env env, struct kt_handle *h)
{
	napi_value ext;
	napi_create_external(env, h, kt_finalize, NULL, &ext);
	return ext;
}

static napi_value kt_undefined(napi_env env)
{
	napi_value u;
	napi_get_undefined(env, &u);
	return u;
}

/* ktLoad(objectPath, maxEntries, pinDir | null) -> handle */
static napi_value kt_load(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3];
	char path[512], pin_dir[256];
	uint32_t max_entries;
	napi_valuetype t;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (argc < 3 || kt_string(env, argv[0], path, sizeof path) || napi_get_value_uint32(env, argv[1], &max_entries) != napi_ok ||
	    max_entries == 0)
		return napi_throw_type_error(env, NULL, "ktLoad(objectPath, maxEntries > 0, pinDir|null)"), NULL;
	napi_typeof(env, argv[2], &t);
	int pin = t == napi_string;
	if (pin && kt_string(env, argv[2], pin_dir, sizeof pin_dir))
		return napi_throw_type_error(env, NULL, "pinDir too long"), NULL;
	libbpf_set_print(NULL);
	struct kt_handle *h = kt_new();
	if (!h)
		return kt_throw(env, "ALLOC", ENOMEM);
	h->obj = bpf_object__open_file(path, NULL);
	if (!h->obj) {
		int err = errno;
		free(h);
		return kt_throw(env, "OPEN", err);
	}
	struct bpf_map *stats = bpf_object__find_map_by_name(h->obj, "conn_stats");
	int err = stats ? bpf_map__set_max_entries(stats, max_entries) : -ENOENT;
	if (!err)
		err = bpf_object__load(h->obj);
	if (err) {
		kt_close_handle(h);
		free(h);
		return kt_throw(env, "LOAD", err);
	}
	h->stats_fd = bpf_map__fd(stats);
	h->health_fd = bpf_object__find_map_fd_by_name(h->obj, "health");
	struct addon_err e;
	if (pin && pin_maps(&h->pins, pin_dir, h->obj, KT_PINNED, KT_NPINNED, &e)) {
		kt_close_handle(h);
		free(h);
		return kt_throw_err(env, &e);
	}
	return kt_wrap(env, h);
}

/*
 * ktOpenPinned(pinDir, maxEntries) -> handle on the pinned maps only. Each map must have the layout
 * kernel-telemetry.bpf.c gives it, conn_stats `maxEntries` slots (kernelTelemetry.maxEntries): else EBPF_KT_LAYOUT.
 */
static napi_value kt_open_pinned(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	char dir[256];
	uint32_t max_entries;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (argc < 2 || kt_string(env, argv[0], dir, sizeof dir) || napi_get_value_uint32(env, argv[1], &max_entries) != napi_ok)
		return napi_throw_type_error(env, NULL, "ktOpenPinned(pinDir, maxEntries)"), NULL;
	const struct pin_spec specs[] = {
		{"conn_stats", KT_STATS_MAP_TYPE, sizeof(struct kt_key), sizeof(struct kt_stats), max_entries},
		{"health", KT_HEALTH_MAP_TYPE, sizeof(__u32), sizeof(__u64), KT_CTR_COUNT},
	};
	struct kt_handle *h = kt_new();
	if (!h)
		return kt_throw(env, "ALLOC", ENOMEM);
	int *fds[] = {&h->stats_fd, &h->health_fd};
	struct addon_err e;
	if (open_pinned_maps(dir, specs, fds, KT_NPINNED, &e)) {
		kt_close_handle(h);
		free(h);
		return kt_throw_err(env, &e);
	}
	return kt_wrap(env, h);
}

/* ktAttach(handle, cgroupPath): the cgroup programs (connect4/6, sockops) on the cgroup, tracing ones globally. */
static napi_value kt_attach(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	char path[512];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	struct kt_handle *h = argc == 2 ? kt_get(env, argv[0]) : NULL;
	if (!h)
		return NULL;
	if (!h->obj || kt_string(env, argv[1], path, sizeof path))
		return napi_throw_type_error(env, NULL, "ktAttach(loadedHandle, cgroupPath)"), NULL;
	if (h->links[0])
		return napi_throw_error(env, "EBPF_KT_ATTACHED", "already attached"), NULL;
	h->cgroup_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (h->cgroup_fd < 0)
		return kt_throw(env, "CGROUP_OPEN", errno);
	/* Every program of the object: cgroup programs on the cgroup, tracing ones where their section says. */
	int i = 0;
	struct bpf_program *p;
	bpf_object__for_each_program(p, h->obj)
	{
		enum bpf_prog_type t = bpf_program__type(p);
		int cg = t == BPF_PROG_TYPE_CGROUP_SOCK_ADDR || t == BPF_PROG_TYPE_SOCK_OPS || t == BPF_PROG_TYPE_CGROUP_SOCK;
		struct bpf_link *l = i >= KT_LINKS ? NULL : cg ? bpf_program__attach_cgroup(p, h->cgroup_fd) : bpf_program__attach(p);
		if (!l) {
			int err = i >= KT_LINKS ? E2BIG : errno;
			kt_detach_links(h);
			return kt_throw(env, "ATTACH", err);
		}
		h->links[i++] = l;
	}
	return kt_undefined(env);
}

static napi_value kt_detach(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	struct kt_handle *h = argc == 1 ? kt_get(env, argv[0]) : NULL;
	if (!h)
		return NULL;
	kt_detach_links(h);
	return kt_undefined(env);
}

static napi_value kt_close(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	void *data = NULL;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (argc == 1 && napi_get_value_external(env, argv[0], &data) == napi_ok && data)
		kt_close_handle(data);
	return kt_undefined(env);
}

/* Adds the per-CPU copies of one aggregate (every field is a u64 counter). */
static void kt_sum(struct kt_stats *out, const __u64 *per_cpu, int ncpu, size_t stride_u64)
{
	__u64 *dst = (__u64 *)out;
	const size_t fields = sizeof(struct kt_stats) / sizeof(__u64);
	memset(out, 0, sizeof *out);
	for (int c = 0; c < ncpu; c++)
		for (size_t f = 0; f < fields; f++)
			dst[f] += per_cpu[c * stride_u64 + f];
}

struct kt_read_state {
	struct kt_key *keys;
	struct kt_stats *vals;
	__u64 *chunk_vals;
	struct kt_key *chunk_keys;
	uint32_t count;
	int ncpu;
	size_t stride_u64;
};

static napi_value kt_read_result(napi_env env, struct kt_read_state *st, int complete)
{
	napi_value out, kb, vb, ab, v;
	void *d;
	double *f;
	const size_t fields = sizeof(struct kt_stats) / sizeof(__u64);
	napi_create_buffer_copy(env, st->count * sizeof(struct kt_key), st->keys, &d, &kb);
	/* Counters as doubles (exact to 2^53): JS indexes a Float64Array instead of converting BigInts. */
	napi_create_arraybuffer(env, st->count * fields * sizeof(double), (void **)&f, &ab);
	for (size_t i = 0; i < st->count; i++)
		for (size_t j = 0; j < fields; j++)
			f[i * fields + j] = (double)((__u64 *)&st->vals[i])[j];
	napi_create_typedarray(env, napi_float64_array, st->count * fields, ab, 0, &vb);
	napi_create_object(env, &out);
	napi_set_named_property(env, out, "keys", kb);
	napi_set_named_property(env, out, "values", vb);
	napi_create_uint32(env, st->count, &v);
	napi_set_named_property(env, out, "count", v);
	napi_get_boolean(env, complete, &v);
	napi_set_named_property(env, out, "complete", v);
	return out;
}

/*
 * ktRead(handle, limit) -> { keys, values: Float64Array, count, complete }: at most `limit` aggregates, CPUs summed.
 * `complete` is false when the limit (the scrape cost cap) stopped the walk before the end of the map.
 */
static napi_value kt_read(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], result = NULL;
	uint32_t limit;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	struct kt_handle *h = argc == 2 ? kt_get(env, argv[0]) : NULL;
	if (!h)
		return NULL;
	if (napi_get_value_uint32(env, argv[1], &limit) != napi_ok || limit > KT_READ_MAX)
		return napi_throw_type_error(env, NULL, "ktRead(handle, limit <= 4M)"), NULL;
	struct kt_read_state st = {.ncpu = libbpf_num_possible_cpus()};
	if (st.ncpu <= 0)
		return kt_throw(env, "NCPU", -st.ncpu);
	st.stride_u64 = PERCPU_STRIDE(sizeof(struct kt_stats)) / sizeof(__u64);
	st.keys = calloc(limit ? limit : 1, sizeof *st.keys);
	st.vals = calloc(limit ? limit : 1, sizeof *st.vals);
	st.chunk_keys = calloc(KT_READ_CHUNK, sizeof *st.chunk_keys);
	st.chunk_vals = calloc((size_t)KT_READ_CHUNK * st.ncpu * st.stride_u64, sizeof(__u64));
	struct batch_walk w = {.fd = h->stats_fd, .keys = st.chunk_keys, .vals = st.chunk_vals, .chunk = KT_READ_CHUNK};
	int got = 0, dropped = 0;
	if (!st.keys || !st.vals || !st.chunk_keys || !st.chunk_vals)
		got = -ENOMEM;
	while (got >= 0 && st.count < limit && (got = batch_next(&w)) > 0) {
		__u32 take = (__u32)got < limit - st.count ? (__u32)got : limit - st.count;
		dropped = take < (__u32)got; /* past the limit: the read is not complete */
		for (__u32 i = 0; i < take; i++) {
			st.keys[st.count] = st.chunk_keys[i];
			kt_sum(&st.vals[st.count], st.chunk_vals + i * st.ncpu * st.stride_u64, st.ncpu, st.stride_u64);
			st.count++;
		}
	}
	if (got < 0)
		kt_throw(env, "READ", got);
	else
		result = kt_read_result(env, &st, w.done && !dropped);
	free(st.keys);
	free(st.vals);
	free(st.chunk_keys);
	free(st.chunk_vals);
	return result;
}

/* ktHealth(handle) -> bigint[] indexed by KT_CTR_*, summed over CPUs. */
static napi_value kt_health(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	struct kt_handle *h = argc == 1 ? kt_get(env, argv[0]) : NULL;
	if (!h)
		return NULL;
	struct addon_err e;
	napi_value out = percpu_sums(env, h->health_fd, KT_CTR_COUNT, &e);
	return out ? out : kt_throw_err(env, &e);
}

/* ktProgramStats(handle) -> program_stats (addon-common.h). */
static napi_value kt_program_stats(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	struct kt_handle *h = argc == 1 ? kt_get(env, argv[0]) : NULL;
	if (!h)
		return NULL;
	return program_stats(env, h->obj);
}

static void kt_num(napi_env env, napi_value obj, const char *name, uint32_t v)
{
	napi_value n;
	napi_create_uint32(env, v, &n);
	napi_set_named_property(env, obj, name, n);
}

#define KT_OFF(obj, type, field) kt_num(env, obj, #field, offsetof(type, field))

/* ktLayout() -> sizes and offsets as this C compiler lays out kernel-telemetry.h. */
static napi_value kt_layout(napi_env env, napi_callback_info info)
{
	(void)info;
	napi_value out, key, stats;
	napi_create_object(env, &out);
	napi_create_object(env, &key);
	napi_create_object(env, &stats);
	kt_num(env, key, "size", sizeof(struct kt_key));
	KT_OFF(key, struct kt_key, cgroup_id);
	KT_OFF(key, struct kt_key, dst);
	KT_OFF(key, struct kt_key, dst_port);
	KT_OFF(key, struct kt_key, family);
	kt_num(env, stats, "size", sizeof(struct kt_stats));
	KT_OFF(stats, struct kt_stats, attempts);
	KT_OFF(stats, struct kt_stats, refused_fastpath);
	KT_OFF(stats, struct kt_stats, established);
	KT_OFF(stats, struct kt_stats, refused_peer);
	KT_OFF(stats, struct kt_stats, reset_peer);
	KT_OFF(stats, struct kt_stats, failed);
	KT_OFF(stats, struct kt_stats, retransmits);
	KT_OFF(stats, struct kt_stats, bytes_acked);
	KT_OFF(stats, struct kt_stats, bytes_received);
	KT_OFF(stats, struct kt_stats, srtt_us_sum);
	KT_OFF(stats, struct kt_stats, srtt_samples);
	KT_OFF(stats, struct kt_stats, handshake_ns_sum);
	KT_OFF(stats, struct kt_stats, hist);
	napi_set_named_property(env, out, "key", key);
	napi_set_named_property(env, out, "stats", stats);
	kt_num(env, out, "histSlots", KT_HIST_SLOTS);
	kt_num(env, out, "healthCount", KT_CTR_COUNT);
	return out;
}

void kt_register(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		{"ktLoad", NULL, kt_load, NULL, NULL, NULL, napi_default, NULL},
		{"ktOpenPinned", NULL, kt_open_pinned, NULL, NULL, NULL, napi_default, NULL},
		{"ktAttach", NULL, kt_attach, NULL, NULL, NULL, napi_default, NULL},
		{"ktDetach", NULL, kt_detach, NULL, NULL, NULL, napi_default, NULL},
		{"ktClose", NULL, kt_close, NULL, NULL, NULL, napi_default, NULL},
		{"ktRead", NULL, kt_read, NULL, NULL, NULL, napi_default, NULL},
		{"ktHealth", NULL, kt_health, NULL, NULL, NULL, napi_default, NULL},
		{"ktProgramStats", NULL, kt_program_stats, NULL, NULL, NULL, napi_default, NULL},
		{"ktLayout", NULL, kt_layout, NULL, NULL, NULL, napi_default, NULL},
	};
	napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
