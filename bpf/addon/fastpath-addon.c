// SPDX-License-Identifier: Apache-2.0
/*
 * N-API addon: loads bpf/fastpath.bpf.o with libbpf, attaches its programs to a cgroup v2 group, and
 * writes the maps in batches. No policy here: user space encodes keys/values (src/fastpath/map-layout.ts)
 * and this file moves bytes. Every failure throws an Error whose `code` is "EBPF_<step>" and `errno` is set.
 */
#define NAPI_VERSION 8
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <node_api.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "addon-common.h"
#include "../fastpath.h"
#include "telemetry-addon.h"

#define MAX_ERR 256

struct fp_handle {
	struct bpf_object *obj;
	struct bpf_link *links[2];
	int verdicts_fd;
	int generation_fd;
	int counters_fd;
	int cgroup_fd;
	__u32 max_entries;   /* of the verdict map: no read returns more */
	struct pin_set pins; /* what load() pinned; only those pins are removed on close */
};

static napi_value throw_err(napi_env env, const struct addon_err *e)
{
	return addon_throw(env, "EBPF_", "", e);
}

static napi_value throw_errno(napi_env env, const char *step, int err)
{
	struct addon_err e;
	addon_fail(&e, step, err, "%s", strerror(err < 0 ? -err : err));
	return throw_err(env, &e);
}

static const char *MAP_NAMES[] = {"verdicts", "generation", "counters"};
#define FP_NPINNED 3

static void close_handle(struct fp_handle *h)
{
	unpin_maps(&h->pins, MAP_NAMES, FP_NPINNED);
	for (int i = 0; i < 2; i++) {
		if (h->links[i])
			bpf_link__destroy(h->links[i]);
		h->links[i] = NULL;
	}
	if (h->cgroup_fd >= 0)
		close(h->cgroup_fd);
	h->cgroup_fd = -1;
	if (h->obj)
		bpf_object__close(h->obj);
	else {
		if (h->verdicts_fd >= 0)
			close(h->verdicts_fd);
		if (h->generation_fd >= 0)
			close(h->generation_fd);
		if (h->counters_fd >= 0)
			close(h->counters_fd);
	}
	h->obj = NULL;
	h->verdicts_fd = h->generation_fd = h->counters_fd = -1;
}

static void finalize_handle(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)hint;
	close_handle((struct fp_handle *)data);
	free(data);
}

static int get_string(napi_env env, napi_value v, char *buf, size_t len)
{
	size_t n;
	return napi_get_value_string_utf8(env, v, buf, len, &n) == napi_ok && n > 0 && n < len - 1 ? 0 : -1;
}

static struct fp_handle *get_handle(napi_env env, napi_value v)
{
	void *data = NULL;
	if (napi_get_value_external(env, v, &data) != napi_ok || !data) {
		napi_throw_type_error(env, NULL, "expected a fast-path handle");
		return NULL;
	}
	struct fp_handle *h = data;
	if (h->verdicts_fd < 0) {
		napi_throw_error(env, "EBPF_CLOSED", "fast-path handle is closed");
		return NULL;
	}
	return h;
}

static napi_value wrap_handle(napi_env env, struct fp_handle *h)
{
	napi_value ext;
	napi_create_external(env, h, finalize_handle, NULL, &ext);
	return ext;
}

static struct fp_handle *new_handle(void)
{
	struct fp_handle *h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	h->verdicts_fd = h->generation_fd = h->counters_fd = h->cgroup_fd = -1;
	pin_set_init(&h->pins);
	return h;
}

/* load(objectPath, maxEntries, pinDir | null) -> handle */
static napi_value fp_load(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3];
	char path[512], pin_dir[256];
	uint32_t max_entries;
	napi_valuetype t;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (argc < 3 || get_string(env, argv[0], path, sizeof path) ||
	    napi_get_value_uint32(env, argv[1], &max_entries) != napi_ok)
		return napi_throw_type_error(env, NULL, "load(objectPath, maxEntries, pinDir|null)"), NULL;
	napi_typeof(env, argv[2], &t);
	int pin = t == napi_string;
	if (pin && get_string(env, argv[2], pin_dir, sizeof pin_dir))
		return napi_throw_type_error(env, NULL, "pinDir too long"), NULL;

	libbpf_set_print(NULL);
	struct fp_handle *h = new_handle();
	if (!h)
		return throw_errno(env, "ALLOC", ENOMEM);
	h->obj = bpf_object__open_file(path, NULL);
	if (!h->obj) {
		int err = errno;
		free(h);
		return throw_errno(env, "OPEN", err);
	}
	struct bpf_map *verdicts = bpf_object__find_map_by_name(h->obj, "verdicts");
	int err = verdicts ? bpf_map__set_max_entries(verdicts, max_entries) : -ENOENT;
	if (!err)
		err = bpf_object__load(h->obj);
	if (err) {
		close_handle(h);
		free(h);
		return throw_errno(env, "LOAD", err);
	}
	h->verdicts_fd = bpf_map__fd(verdicts);
	h->max_entries = bpf_map__max_entries(verdicts);
	h->generation_fd = bpf_object__find_map_fd_by_name(h->obj, "generation");
	h->counters_fd = bpf_object__find_map_fd_by_name(h->obj, "counters");
	struct addon_err e;
	if (pin && pin_maps(&h->pins, pin_dir, h->obj, MAP_NAMES, FP_NPINNED, &e)) {
		close_handle(h);
		free(h);
		return throw_err(env, &e);
	}
	return wrap_handle(env, h);
}

/*
 * openPinned(pinDir, maxEntries) -> handle (maps only; for `verdict fastpath status`). Each map must have the
 * layout fastpath.bpf.c gives it, the verdict map `maxEntries` slots (fastpath.maxEntries): else EBPF_LAYOUT.
 */
static napi_value fp_open_pinned(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	char dir[256];
	uint32_t max_entries;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (argc < 2 || get_string(env, argv[0], dir, sizeof dir) || napi_get_value_uint32(env, argv[1], &max_entries) != napi_ok)
		return napi_throw_type_error(env, NULL, "openPinned(pinDir, maxEntries)"), NULL;
	const struct pin_spec specs[] = {
		{"verdicts", FP_VERDICTS_MAP_TYPE, sizeof(struct fp_key), sizeof(struct fp_verdict), max_entries},
		{"generation", FP_GENERATION_MAP_TYPE, sizeof(__u32), sizeof(__u64), FP_GENERATION_SLOTS},
		{"counters", FP_COUNTERS_MAP_TYPE, sizeof(__u32), sizeof(__u64), FP_CTR_COUNT},
	};
	struct fp_handle *h = new_handle();
	if (!h)
		return throw_errno(env, "ALLOC", ENOMEM);
	int *fds[] = {&h->verdicts_fd, &h->generation_fd, &h->counters_fd};
	struct addon_err e;
	if (open_pinned_maps(dir, specs, fds, FP_NPINNED, &e)) {
		close_handle(h);
		free(h);
		return throw_err(env, &e);
	}
	h->max_entries = max_entries;
	return wrap_handle(env, h);
}

/* attach(handle, cgroupPath): connect4 + connect6 as bpf_links (they detach when the handle closes). */
static napi_value fp_attach(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	char path[512];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	struct fp_handle *h = argc == 2 ? get_handle(env, argv[0]) : NULL;
	if (!h)
		return NULL;
	if (!h->obj || get_string(env, argv[1], path, sizeof path))
		return napi_throw_type_error(env, NULL, "attach(loadedHandle, cgroupPath)"), NULL;
	if (h->links[0])
		return napi_throw_error(env, "EBPF_ATTACHED", "already attached"), NULL;
	h->cgroup_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (h->cgroup_fd < 0)
		return throw_errno(env, "CGROUP_OPEN", errno);
	const char *progs[] = {"connect4", "connect6"};
	for (int i = 0; i < 2; i++) {
		struct bpf_program *p = bpf_object__find_program_by_name(h->obj, progs[i]);
		h->links[i] = p ? bpf_program__attach_cgroup(p, h->cgroup_fd) : NULL;
		if (!h->links[i]) {
			int err = p ? errno : ENOENT;
			for (int j = 0; j < i; j++) {
				bpf_link__destroy(h->links[j]);
				h->links[j] = NULL;
			}
			close(h->cgroup_fd);
			h->cgroup_fd = -1;
			return throw_errno(env, "ATTACH", err);
		}
	}
	napi_value undef;
	napi_get_undefined(env, &undef);
	return undef;
}

static napi_value fp_detach(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], undef;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	struct fp_handle *h = argc == 1 ? get_handle(env, argv[0]) : NULL;
	if (!h)
		return NULL;
	for (int i = 0; i < 2; i++) {
		if (h->links[i])
			bpf_link__destroy(h->links[i]);
		h->links[i] = NULL;
	}
	if (h->cgroup_fd >= 0)
		close(h->cgroup_fd);
	h->cgroup_fd = -1;
	napi_get_undefined(env, &undef);
	return undef;
}

static napi_value fp_close(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], undef;
	void *data = NULL;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (argc == 1 && napi_get_value_external(env, argv[0], &data) == napi_ok && data)
		close_handle((struct fp_handle *)data);
	napi_get_undefined(env, &undef);
	return undef;
}

static int get_buffer(napi_env env, napi_value v, void **data, size_t *len)
{
	bool is;
	if (napi_is_buffer(env, v, &is) != napi_ok || !is)
		return -1;
	return napi_get_buffer_info(env, v, data, len) == napi_ok ? 0 : -1;
}

/*
 * update(handle, keys, values, count) -> count written. One BPF_MAP_UPDATE_BATCH syscall when the kernel
 * has it; else one update per entry (still no process spawn, still one call from JS).
 */
static napi_value fp_update(napi_env env, napi_callback_info info)
{
	size_t argc = 4, klen, vlen;
	napi_value argv[4], out;
	void *keys, *values;
	uint32_t count;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	struct fp_handle *h = argc == 4 ? get_handle(env, argv[0]) : NULL;
	if (!h)
		return NULL;
	if (get_buffer(env, argv[1], &keys, &klen) || get_buffer(env, argv[2], &values, &vlen) ||
	    napi_get_value_uint32(env, argv[3], &count) != napi_ok || klen < (size_t)count * sizeof(struct fp_key) ||
	    vlen < (size_t)count * sizeof(struct fp_verdict))
		return napi_throw_type_error(env, NULL, "update(handle, keys, values, count): buffers too short"), NULL;
	__u32 n = count;
	int err = count ? bpf_map_update_batch(h->verdicts_fd, keys, values, &n, NULL) : 0;
	if (err && (errno == EINVAL || errno == 524 /* ENOTSUPP */ || errno == EOPNOTSUPP)) {
		err = 0;
		for (n = 0; n < count && !err; n++)
			err = bpf_map_update_elem(h->verdicts_fd, (char *)keys + n * sizeof(struct fp_key),
						  (char *)values + n * sizeof(struct fp_verdict), BPF_ANY);
	}
	if (err)
		return throw_errno(env, "UPDATE", errno);
	napi_create_uint32(env, n, &out);
	return out;
}

/* remove(handle, keys, count) -> count removed (absent keys are not an error). */
static napi_value fp_remove(napi_env env, napi_callback_info info)
{
	size_t argc = 3, klen;
	napi_value argv[3], out;
	void *keys;
	uint32_t count, removed = 0;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	struct fp_handle *h = argc == 3 ? get_handle(env, argv[0]) : NULL;
	if (!h)
		return NULL;
	if (get_buffer(env, argv[1], &keys, &klen) || napi_get_value_uint32(env, argv[2], &count) != napi_ok ||
	    klen < (size_t)count * sizeof(struct fp_key))
		return napi_throw_type_error(env, NULL, "remove(handle, keys, count)"), NULL;
	for (uint32_t i = 0; i < count; i++)
		if (bpf_map_delete_elem(h->verdicts_fd, (char *)keys + i * sizeof(struct fp_key)) == 0)
			removed++;
	napi_create_uint32(env, removed, &out);
	return out;
}

static napi_value fp_set_generation(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], undef;
	bool lossless;
	uint64_t gen;
	__u32 zero = 0;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	struct fp_handle *h = argc == 2 ? get_handle(env, argv[0]) : NULL;
	if (!h)
		return NULL;
	if (napi_get_value_bigint_uint64(env, argv[1], &gen, &lossless) != napi_ok || !lossless)
		return napi_throw_type_error(env, NULL, "setGeneration(handle, bigint)"), NULL;
	if (bpf_map_update_elem(h->generation_fd, &zero, &gen, BPF_ANY))
		return throw_errno(env, "GENERATION", errno);
	napi_get_undefined(env, &undef);
	return undef;
}

static napi_value fp_get_generation(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], out;
	uint64_t gen = 0;
	__u32 zero = 0;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	struct fp_handle *h = argc == 1 ? get_handle(env, argv[0]) : NULL;
	if (!h)
		return NULL;
	if (bpf_map_lookup_elem(h->generation_fd, &zero, &gen))
		return throw_errno(env, "GENERATION", errno);
	napi_create_bigint_uint64(env, gen, &out);
	return out;
}

/* counters(handle) -> BigUint64Array-like plain array of bigint sums over CPUs, indexed by FP_CTR_*. */
static napi_value fp_counters(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	struct fp_handle *h = argc == 1 ? get_handle(env, argv[0]) : NULL;
	if (!h)
		return NULL;
	struct addon_err e;
	napi_value out = percpu_sums(env, h->counters_fd, FP_CTR_COUNT, &e);
	return out ? out : throw_err(env, &e);
}

#define FP_DUMP_CHUNK 1024

/*
 * dump(handle, limit) -> { keys: Buffer, values: Buffer, count }: at most min(limit, max_entries) entries, each
 * once, read in BPF_MAP_LOOKUP_BATCH chunks (batch_walk) while the kernel and the writer keep changing the map.
 */
static napi_value fp_dump(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], out, kb, vb, n;
	uint32_t limit, count = 0;
	void *kd, *vd;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	struct fp_handle *h = argc == 2 ? get_handle(env, argv[0]) : NULL;
	if (!h)
		return NULL;
	if (napi_get_value_uint32(env, argv[1], &limit) != napi_ok || limit > (1u << 22))
		return napi_throw_type_error(env, NULL, "dump(handle, limit <= 4M)"), NULL;
	if (limit > h->max_entries)
		limit = h->max_entries;
	struct fp_key *keys = calloc(limit ? limit : 1, sizeof *keys), *chunk_keys = calloc(FP_DUMP_CHUNK, sizeof *chunk_keys);
	struct fp_verdict *vals = calloc(limit ? limit : 1, sizeof *vals), *chunk_vals = calloc(FP_DUMP_CHUNK, sizeof *chunk_vals);
	struct batch_walk w = {.fd = h->verdicts_fd, .keys = chunk_keys, .vals = chunk_vals, .chunk = FP_DUMP_CHUNK};
	int got = 0;
	if (!keys || !vals || !chunk_keys || !chunk_vals)
		got = -ENOMEM;
	while (got >= 0 && count < limit && (got = batch_next(&w)) > 0) {
		__u32 take = (__u32)got < limit - count ? (__u32)got : limit - count;
		memcpy(&keys[count], chunk_keys, take * sizeof *keys);
		memcpy(&vals[count], chunk_vals, take * sizeof *vals);
		count += take;
	}
	if (got >= 0) {
		napi_create_buffer_copy(env, count * sizeof *keys, keys, &kd, &kb);
		napi_create_buffer_copy(env, count * sizeof *vals, vals, &vd, &vb);
	}
	free(keys);
	free(vals);
	free(chunk_keys);
	free(chunk_vals);
	if (got < 0)
		return throw_errno(env, got == -ENOMEM ? "ALLOC" : "READ", got);
	napi_create_object(env, &out);
	napi_create_uint32(env, count, &n);
	napi_set_named_property(env, out, "keys", kb);
	napi_set_named_property(env, out, "values", vb);
	napi_set_named_property(env, out, "count", n);
	return out;
}

/* monotonicNs() -> bigint: the clock bpf_ktime_get_ns() reads (CLOCK_MONOTONIC). */
static napi_value fp_monotonic_ns(napi_env env, napi_callback_info info)
{
	(void)info;
	struct timespec ts;
	napi_value out;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	napi_create_bigint_uint64(env, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec, &out);
	return out;
}

static void set_num(napi_env env, napi_value obj, const char *name, uint32_t v)
{
	napi_value n;
	napi_create_uint32(env, v, &n);
	napi_set_named_property(env, obj, name, n);
}

/* layout() -> sizes and offsets as this C compiler lays out fastpath.h (compared with map-layout.ts). */
static napi_value fp_layout(napi_env env, napi_callback_info info)
{
	(void)info;
	napi_value out;
	napi_create_object(env, &out);
	set_num(env, out, "keySize", sizeof(struct fp_key));
	set_num(env, out, "keySrc", offsetof(struct fp_key, src));
	set_num(env, out, "keyDst", offsetof(struct fp_key, dst));
	set_num(env, out, "keyDstPort", offsetof(struct fp_key, dst_port));
	set_num(env, out, "keyFamily", offsetof(struct fp_key, family));
	set_num(env, out, "valueSize", sizeof(struct fp_verdict));
	set_num(env, out, "valueGeneration", offsetof(struct fp_verdict, generation));
	set_num(env, out, "valueExpiresNs", offsetof(struct fp_verdict, expires_ns));
	set_num(env, out, "valueAction", offsetof(struct fp_verdict, action));
	set_num(env, out, "actionAllow", FP_ACTION_ALLOW);
	set_num(env, out, "actionDeny", FP_ACTION_DENY);
	set_num(env, out, "counterCount", FP_CTR_COUNT);
	return out;
}

/*
 * queryCgroup(handle, cgroupPath) -> [{ attachType, id, name }] of the connect4/6 programs attached to the
 * cgroup that use this handle's verdict map: not those of another verdict or of kernel telemetry there.
 */
static napi_value fp_query_cgroup(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], out, item, v;
	char path[512];
	struct bpf_map_info mi;
	struct addon_err e;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	struct fp_handle *h = argc == 2 ? get_handle(env, argv[0]) : NULL;
	if (!h)
		return NULL;
	if (get_string(env, argv[1], path, sizeof path))
		return napi_throw_type_error(env, NULL, "queryCgroup(handle, cgroupPath)"), NULL;
	if (map_info(h->verdicts_fd, "verdicts", &mi, &e))
		return throw_err(env, &e);
	int cg = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0)
		return throw_errno(env, "CGROUP_OPEN", errno);
	napi_create_array(env, &out);
	uint32_t idx = 0;
	const enum bpf_attach_type types[] = {BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_INET6_CONNECT};
	const char *names[] = {"connect4", "connect6"};
	for (int t = 0; t < 2; t++) {
		__u32 ids[64], cnt = 64, flags = 0;
		if (bpf_prog_query(cg, types[t], 0, &flags, ids, &cnt))
			continue;
		for (__u32 i = 0; i < cnt; i++) {
			struct bpf_prog_info pi;
			int fd = bpf_prog_get_fd_by_id(ids[i]);
			if (fd < 0)
				continue; /* detached and unloaded meanwhile */
			int ours = prog_uses_map(fd, mi.id, &pi);
			close(fd);
			if (!ours)
				continue;
			napi_create_object(env, &item);
			napi_create_string_utf8(env, names[t], NAPI_AUTO_LENGTH, &v);
			napi_set_named_property(env, item, "attachType", v);
			set_num(env, item, "id", ids[i]);
			napi_create_string_utf8(env, pi.name, strnlen(pi.name, sizeof pi.name), &v);
			napi_set_named_property(env, item, "name", v);
			napi_set_element(env, out, idx++, item);
		}
	}
	close(cg);
	return out;
}

/* programStats(handle) -> program_stats (addon-common.h). */
static napi_value fp_program_stats(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	struct fp_handle *h = argc == 1 ? get_handle(env, argv[0]) : NULL;
	if (!h)
		return NULL;
	return program_stats(env, h->obj);
}

static napi_value init(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		{"load", NULL, fp_load, NULL, NULL, NULL, napi_default, NULL},
		{"openPinned", NULL, fp_open_pinned, NULL, NULL, NULL, napi_default, NULL},
		{"attach", NULL, fp_attach, NULL, NULL, NULL, napi_default, NULL},
		{"detach", NULL, fp_detach, NULL, NULL, NULL, napi_default, NULL},
		{"close", NULL, fp_close, NULL, NULL, NULL, napi_default, NULL},
		{"update", NULL, fp_update, NULL, NULL, NULL, napi_default, NULL},
		{"remove", NULL, fp_remove, NULL, NULL, NULL, napi_default, NULL},
		{"setGeneration", NULL, fp_set_generation, NULL, NULL, NULL, napi_default, NULL},
		{"getGeneration", NULL, fp_get_generation, NULL, NULL, NULL, napi_default, NULL},
		{"counters", NULL, fp_counters, NULL, NULL, NULL, napi_default, NULL},
		{"dump", NULL, fp_dump, NULL, NULL, NULL, napi_default, NULL},
		{"monotonicNs", NULL, fp_monotonic_ns, NULL, NULL, NULL, napi_default, NULL},
		{"queryCgroup", NULL, fp_query_cgroup, NULL, NULL, NULL, napi_default, NULL},
		{"programStats", NULL, fp_program_stats, NULL, NULL, NULL, napi_default, NULL},
		{"layout", NULL, fp_layout, NULL, NULL, NULL, napi_default, NULL},
	};
	napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
	kt_register(env, exports);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
