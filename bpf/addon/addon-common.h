/*
 * Shared by the fast-path and kernel-telemetry addons: coded errors, opening pinned maps (checked before use: see
 * "Hostile pins" in docs/fastpath.md), reading per-CPU counters, program stats.
 */
#ifndef VERDICT_ADDON_COMMON_H
#define VERDICT_ADDON_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <node_api.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

/* What went wrong: `step` becomes the error code's suffix (EBPF_<step>), `err` its errno, `why` its message. */
struct addon_err {
	const char *step;
	int err;
	char why[384];
};

/* Fills *e; returns -1 so callers can `return addon_fail(...)`. */
__attribute__((format(printf, 4, 5))) static inline int addon_fail(struct addon_err *e, const char *step, int err,
								  const char *fmt, ...)
{
	va_list ap;
	e->step = step;
	e->err = err < 0 ? -err : err;
	va_start(ap, fmt);
	vsnprintf(e->why, sizeof e->why, fmt, ap);
	va_end(ap);
	return -1;
}

/* Throws an Error with code `<code_prefix><step>`, message `<msg_prefix><step>: <why>` and `errno`. */
static inline napi_value addon_throw(napi_env env, const char *code_prefix, const char *msg_prefix, const struct addon_err *e)
{
	char code[64], msg[512];
	snprintf(code, sizeof code, "%s%s", code_prefix, e->step);
	snprintf(msg, sizeof msg, "%s%s: %s", msg_prefix, e->step, e->why);
	napi_value ecode, emsg, error, eno;
	napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &ecode);
	napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &emsg);
	napi_create_error(env, ecode, emsg, &error);
	napi_create_int32(env, e->err, &eno);
	napi_set_named_property(env, error, "errno", eno);
	napi_throw(env, error);
	return NULL;
}

/* The kernel copies each CPU's value of a per-CPU map into a slot of the value size rounded up to 8 bytes. */
#define PERCPU_STRIDE(value_size) (((size_t)(value_size) + 7) / 8 * 8)

/*
 * The first `count` slots of a BPF_MAP_TYPE_PERCPU_ARRAY of __u64, each summed over the possible CPUs, as a
 * JS array of bigint. A slot that cannot be read counts as 0. NULL on failure, with *e set. The map's value
 * size must be sizeof(__u64): checked when it was opened (open_pinned_maps) or defined so by our own object.
 */
static inline napi_value percpu_sums(napi_env env, int map_fd, __u32 count, struct addon_err *e)
{
	napi_value out, v;
	int ncpu = libbpf_num_possible_cpus();
	const size_t stride = PERCPU_STRIDE(sizeof(__u64)) / sizeof(__u64);
	if (ncpu <= 0) {
		addon_fail(e, "NCPU", ncpu, "possible CPUs: %s", strerror(-ncpu));
		return NULL;
	}
	__u64 *per_cpu = calloc((size_t)ncpu * stride, sizeof(__u64));
	if (!per_cpu) {
		addon_fail(e, "ALLOC", ENOMEM, "%s", strerror(ENOMEM));
		return NULL;
	}
	napi_create_array_with_length(env, count, &out);
	for (__u32 slot = 0; slot < count; slot++) {
		__u64 sum = 0;
		if (bpf_map_lookup_elem(map_fd, &slot, per_cpu) == 0)
			for (int c = 0; c < ncpu; c++)
				sum += per_cpu[c * stride];
		napi_create_bigint_uint64(env, sum, &v);
		napi_set_element(env, out, slot, v);
	}
	free(per_cpu);
	return out;
}

/*
 * Pinned maps are objects any local user can create (the bpffs root is mode 1777), so one is used only if it
 * has the exact type, key size, value size and max_entries the program defines (struct pin_spec, derived from
 * the shared headers): the readers copy its keys and values into structs of those sizes, and any other layout
 * would overrun them.
 */
struct pin_spec {
	const char *name;
	__u32 type;
	__u32 key_size;
	__u32 value_size;
	__u32 max_entries;
};

/* The info of the map `fd` is; -1 with *e set when fd is not a map (a pinned program or link). */
static inline int map_info(int fd, const char *name, struct bpf_map_info *info, struct addon_err *e)
{
	char link[48], target[32] = "";
	__u32 len = sizeof *info;
	/* bpf_obj_get_info_by_fd answers for any BPF object, in that object's info struct: ask the fd what it is first. */
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	if (readlink(link, target, sizeof target - 1) < 0 || strcmp(target, "anon_inode:bpf-map") != 0)
		return addon_fail(e, "LAYOUT", EINVAL, "%s is not a BPF map (%s)", name, target[0] ? target : "unknown");
	memset(info, 0, sizeof *info);
	if (bpf_obj_get_info_by_fd(fd, info, &len))
		return addon_fail(e, "LAYOUT", errno, "%s: map info: %s", name, strerror(errno));
	return 0;
}

/* 0 when the map `fd` (pinned at `path`) has exactly spec's layout; -1 with *e set (step LAYOUT) saying how it differs. */
static inline int check_layout(int fd, const char *path, const struct pin_spec *s, struct addon_err *e)
{
	struct bpf_map_info info;
	if (map_info(fd, path, &info, e))
		return -1;
	if (info.type == s->type && info.key_size == s->key_size && info.value_size == s->value_size &&
	    info.max_entries == s->max_entries)
		return 0;
	return addon_fail(e, "LAYOUT", EINVAL,
			  "%s is a map of type %u, key %u, value %u bytes, %u entries; expected type %u, key %u, value %u, %u entries",
			  path, info.type, info.key_size, info.value_size, info.max_entries, s->type, s->key_size, s->value_size,
			  s->max_entries);
}

/* Opens the `n` maps pinned under dir into *fds[i] if each has its spec's layout: 0, or -1 with *e set. */
static inline int open_pinned_maps(const char *dir, const struct pin_spec *specs, int *const *fds, int n, struct addon_err *e)
{
	char path[512];
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, specs[i].name);
		*fds[i] = bpf_obj_get(path);
		if (*fds[i] < 0)
			return addon_fail(e, "OPEN_PINNED", errno, "%s: %s", path, strerror(errno));
		if (check_layout(*fds[i], path, &specs[i], e))
			return -1;
	}
	return 0;
}

/* [{ name, runCount, runTimeNs }] for every program of obj (non-zero only while kernel.bpf_stats_enabled=1). */
static inline napi_value program_stats(napi_env env, struct bpf_object *obj)
{
	napi_value out, item, v;
	napi_create_array(env, &out);
	if (!obj)
		return out;
	uint32_t idx = 0;
	struct bpf_program *p;
	bpf_object__for_each_program(p, obj)
	{
		struct bpf_prog_info pi;
		__u32 len = sizeof pi;
		memset(&pi, 0, sizeof pi);
		if (bpf_obj_get_info_by_fd(bpf_program__fd(p), &pi, &len))
			continue;
		napi_create_object(env, &item);
		napi_create_string_utf8(env, bpf_program__name(p), NAPI_AUTO_LENGTH, &v);
		napi_set_named_property(env, item, "name", v);
		napi_create_bigint_uint64(env, pi.run_cnt, &v);
		napi_set_named_property(env, item, "runCount", v);
		napi_create_bigint_uint64(env, pi.run_time_ns, &v);
		napi_set_named_property(env, item, "runTimeNs", v);
		napi_set_element(env, out, idx++, item);
	}
	return out;
}

#endif
