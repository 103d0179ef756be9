/* Shared by the fast-path and kernel-telemetry addons: opening pinned maps, reading per-CPU counters. */
#ifndef VERDICT_ADDON_COMMON_H
#define VERDICT_ADDON_COMMON_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <node_api.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

/*
 * The first `count` slots of a BPF_MAP_TYPE_PERCPU_ARRAY of __u64, each summed over the possible CPUs, as a
 * JS array of bigint. A slot that cannot be read counts as 0. NULL on failure, with *what and *err set for
 * the caller's own coded throw.
 */
static inline napi_value percpu_sums(napi_env env, int map_fd, __u32 count, const char **what, int *err)
{
	napi_value out, v;
	int ncpu = libbpf_num_possible_cpus();
	if (ncpu <= 0) {
		*what = "NCPU";
		*err = -ncpu;
		return NULL;
	}
	__u64 *per_cpu = calloc((size_t)ncpu, sizeof(__u64));
	if (!per_cpu) {
		*what = "ALLOC";
		*err = ENOMEM;
		return NULL;
	}
	napi_create_array_with_length(env, count, &out);
	for (__u32 slot = 0; slot < count; slot++) {
		__u64 sum = 0;
		if (bpf_map_lookup_elem(map_fd, &slot, per_cpu) == 0)
			for (int c = 0; c < ncpu; c++)
				sum += per_cpu[c];
		napi_create_bigint_uint64(env, sum, &v);
		napi_set_element(env, out, slot, v);
	}
	free(per_cpu);
	return out;
}

/* Opens `n` maps pinned under `dir` by name into *fds[i]; 0, or the errno of the first that fails. */
static inline int open_pinned_maps(const char *dir, const char *const *names, int *const *fds, int n)
{
	char path[512];
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		*fds[i] = bpf_obj_get(path);
		if (*fds[i] < 0)
			return errno;
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
