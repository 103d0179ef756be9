/*
 * Shared by the fast-path and kernel-telemetry addons: coded errors, the pin directory and pinned maps (checked
 * before use: see "Hostile pins" in docs/fastpath.md), reading per-CPU counters, program stats.
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
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
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
 * A walk over a hash map with BPF_MAP_LOOKUP_BATCH, up to `chunk` entries per call into keys/vals. Its cursor
 * is a bucket index, so entries deleted meanwhile cannot send it back to the start: each entry comes at most
 * once. (get_next_key restarts from the first key when its cursor key was deleted: under churn a walk returned
 * the same entries again and again.)
 */
struct batch_walk {
	int fd;
	void *keys;
	void *vals; /* for a per-CPU map, PERCPU_STRIDE(value size) bytes per possible CPU per entry */
	__u32 chunk;
	__u64 cursor[2][8]; /* in and out batch: a hash map's is a u32 bucket, an array's a key */
	int cur, started, done;
};

/* The next chunk into w->keys/w->vals: the number of entries read (0 at the end of the map), or -errno. */
static inline int batch_next(struct batch_walk *w)
{
	if (w->done)
		return 0;
	/* Always a whole chunk: the kernel refuses (ENOSPC) some smaller counts; callers drop what they do not need. */
	__u32 n = w->chunk;
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	int err = bpf_map_lookup_batch(w->fd, w->started ? w->cursor[w->cur] : NULL, w->cursor[w->cur ^ 1], w->keys, w->vals, &n, &opts);
	if (err && errno != ENOENT)
		return -errno;
	w->done = err != 0; /* ENOENT: the last entries (n may be > 0) */
	w->started = 1;
	w->cur ^= 1;
	return (int)n;
}

/*
 * Pin paths. The bpffs root is mode 1777: any local user can create what sits at a pin path (a symlink to a
 * directory root would then write in and delete from, a directory of their own where they can swap our pins
 * for other maps, a map of a layout our fixed-size structs would be overrun by). So:
 *   - the pin directory is opened with O_NOFOLLOW and must be a directory on bpffs, owned by the effective
 *     uid and not writable by group or others (nobody else can add, swap or remove a pin in it); every later
 *     access goes through that fd (/proc/self/fd/N/name), so renaming the path after the check changes nothing;
 *   - an entry in it is never followed nor removed unless it is a bpffs object (a regular file there);
 *   - a pinned map is used only if it has the exact type, key size, value size and max_entries of struct
 *     pin_spec, derived from the shared headers (the readers copy keys and values into structs of those sizes);
 *   - a pin whose map a loaded program still uses (another running verdict) is not taken over, and on close
 *     only the pins this process made (same map id) are removed.
 */

/* The layout a pinned map must have: what the program defines (bpf/fastpath.h, bpf/kernel-telemetry.h). */
struct pin_spec {
	const char *name;
	__u32 type;
	__u32 key_size;
	__u32 value_size;
	__u32 max_entries;
};

/* The pins one handle made, to remove exactly those when it closes. */
#define PIN_MAX 4
struct pin_set {
	int dirfd; /* -1 when not pinned */
	int made;  /* 1 when this process created the directory (removed again when empty) */
	char dir[256];
	__u32 ids[PIN_MAX]; /* id of the map pinned under each name; 0 for none */
};

static inline void pin_set_init(struct pin_set *ps)
{
	memset(ps, 0, sizeof *ps);
	ps->dirfd = -1;
}

/* The path of `name` inside the directory open as dirfd, resolved through the fd, not the directory's name. */
static inline void pin_path(char *buf, size_t len, int dirfd, const char *name)
{
	snprintf(buf, len, "/proc/self/fd/%d/%s", dirfd, name);
}

/*
 * Opens the pin directory `dir` after the checks above; with `create`, makes it (0700) when missing and sets
 * *made. The fd, or -1 with *e set (step PIN_DIR) saying what is wrong.
 */
static inline int open_pin_dir(const char *dir, int create, int *made, struct addon_err *e)
{
	struct stat st;
	struct statfs fs;
	*made = 0;
	if (create) {
		if (mkdir(dir, 0700) == 0)
			*made = 1;
		else if (errno != EEXIST)
			return addon_fail(e, "PIN_DIR", errno, "%s: cannot create: %s", dir, strerror(errno));
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		if (lstat(dir, &st) == 0 && S_ISLNK(st.st_mode))
			return addon_fail(e, "PIN_DIR", ELOOP, "%s is a symlink (refused: it could point anywhere)", dir);
		return addon_fail(e, "PIN_DIR", err, "%s: %s", dir, strerror(err));
	}
	const char *wrong = NULL;
	char detail[64] = "";
	if (fstat(fd, &st) || fstatfs(fd, &fs))
		wrong = strerror(errno);
	else if (fs.f_type != BPF_FS_MAGIC)
		wrong = "is not on a bpf filesystem";
	else if (st.st_uid != geteuid()) {
		wrong = "is owned by another user";
		snprintf(detail, sizeof detail, " (uid %u, not %u)", (unsigned)st.st_uid, (unsigned)geteuid());
	} else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		wrong = "is writable by group or others";
		snprintf(detail, sizeof detail, " (mode %04o)", (unsigned)(st.st_mode & 07777));
	}
	if (wrong) {
		close(fd);
		if (*made)
			rmdir(dir); /* ours and empty: a misconfigured pinPath (not on bpffs) leaves nothing behind */
		return addon_fail(e, "PIN_DIR", EPERM, "%s %s%s", dir, wrong, detail);
	}
	return fd;
}

/* 0 when nothing is at `name`, 1 when a bpffs object is; -1 with *e set when something else is (a symlink, a directory). */
static inline int pin_entry(int dirfd, const char *dir, const char *name, const char *step, struct addon_err *e)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW)) {
		if (errno == ENOENT)
			return 0;
		return addon_fail(e, step, errno, "%s/%s: %s", dir, name, strerror(errno));
	}
	if (!S_ISREG(st.st_mode))
		return addon_fail(e, step, EEXIST, "%s/%s is %s, not a pinned BPF object (refused)", dir, name,
				  S_ISLNK(st.st_mode) ? "a symlink" : S_ISDIR(st.st_mode) ? "a directory" : "a special file");
	return 1;
}

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

/* Opens the `n` maps pinned under dir into *fds[i] if dir passes the checks and each map has its spec's layout: 0, or -1 with *e set. */
static inline int open_pinned_maps(const char *dir, const struct pin_spec *specs, int *const *fds, int n, struct addon_err *e)
{
	int made, rc = 0;
	int dirfd = open_pin_dir(dir, 0, &made, e);
	if (dirfd < 0)
		return -1;
	for (int i = 0; i < n && rc == 0; i++) {
		char path[512], via_fd[320];
		snprintf(path, sizeof path, "%s/%s", dir, specs[i].name);
		pin_path(via_fd, sizeof via_fd, dirfd, specs[i].name);
		int found = pin_entry(dirfd, dir, specs[i].name, "OPEN_PINNED", e);
		if (found <= 0)
			rc = found == 0 ? addon_fail(e, "OPEN_PINNED", ENOENT, "%s: %s", path, strerror(ENOENT)) : -1;
		else if ((*fds[i] = bpf_obj_get(via_fd)) < 0)
			rc = addon_fail(e, "OPEN_PINNED", errno, "%s: %s", path, strerror(errno));
		else
			rc = check_layout(*fds[i], path, &specs[i], e);
	}
	close(dirfd);
	return rc;
}

/*
 * 1 when the program `prog_fd` uses map `map_id` (its bpf_prog_info map_ids; a program holds at most 64 maps,
 * the kernel's MAX_USED_MAPS), with *pi its info; 0 when it does not or cannot be asked.
 */
static inline int prog_uses_map(int prog_fd, __u32 map_id, struct bpf_prog_info *pi)
{
	__u32 ids[64], len = sizeof *pi;
	memset(pi, 0, sizeof *pi);
	pi->nr_map_ids = 64;
	pi->map_ids = (__u64)(uintptr_t)ids;
	if (bpf_obj_get_info_by_fd(prog_fd, pi, &len))
		return 0;
	for (__u32 i = 0; i < pi->nr_map_ids && i < 64; i++)
		if (ids[i] == map_id)
			return 1;
	return 0;
}

/* 1 when some loaded program uses map `map_id`, with *pi its info; 0 when none does. */
static inline int map_in_use(__u32 map_id, struct bpf_prog_info *pi)
{
	__u32 id = 0;
	while (bpf_prog_get_next_id(id, &id) == 0) {
		int fd = bpf_prog_get_fd_by_id(id);
		if (fd < 0)
			continue; /* unloaded meanwhile */
		int used = prog_uses_map(fd, map_id, pi);
		close(fd);
		if (used)
			return 1;
	}
	return 0;
}

/*
 * 0 when the pin at `name` (a bpffs object) may be replaced: a map no loaded program uses, left by a verdict
 * that is gone. A map a program still uses belongs to a verdict that is running (on this pinPath, whatever its
 * cgroup): taking it over would leave that one enforcing with no pins, `status` reading ours, and its stop
 * deleting them. -1 with *e set then (EBPF_PIN_IN_USE), or when the object is not a map.
 */
static inline int pin_replaceable(int dirfd, const char *dir, const char *name, struct addon_err *e)
{
	char path[320];
	struct bpf_map_info info;
	struct bpf_prog_info pi;
	pin_path(path, sizeof path, dirfd, name);
	int fd = bpf_obj_get(path);
	if (fd < 0)
		return addon_fail(e, "PIN", errno, "%s/%s: %s", dir, name, strerror(errno));
	int rc = map_info(fd, name, &info, e);
	close(fd);
	if (rc)
		return addon_fail(e, "PIN", EEXIST, "%s/%s is not a BPF map (refused: not a pin of ours to replace)", dir, name);
	if (map_in_use(info.id, &pi))
		return addon_fail(e, "PIN_IN_USE", EBUSY,
				  "%s/%s is map %u of program %u (%.*s), which is loaded: another verdict is using this pin path",
				  dir, name, info.id, pi.id, (int)strnlen(pi.name, sizeof pi.name), pi.name);
	return 0;
}

/*
 * Pins the maps of obj named `names` under dir (made 0700 if missing) and records them in *ps: 0, or -1 with *e
 * set. A stale pin already there (left by an earlier run: its state is not ours to trust) is replaced; one in
 * use (pin_replaceable) or anything else at the name (a symlink, a directory) is refused, never followed nor
 * removed.
 */
static inline int pin_maps(struct pin_set *ps, const char *dir, struct bpf_object *obj, const char *const *names, int n,
			   struct addon_err *e)
{
	char path[320];
	if (n > PIN_MAX)
		return addon_fail(e, "PIN", E2BIG, "%d maps to pin, at most %d", n, PIN_MAX);
	snprintf(ps->dir, sizeof ps->dir, "%s", dir);
	ps->dirfd = open_pin_dir(dir, 1, &ps->made, e);
	if (ps->dirfd < 0)
		return -1;
	/* Every name first, so that a refusal of one replaces none. */
	for (int i = 0; i < n; i++) {
		int at = pin_entry(ps->dirfd, dir, names[i], "PIN", e);
		if (at < 0 || (at == 1 && pin_replaceable(ps->dirfd, dir, names[i], e)))
			return -1;
	}
	for (int i = 0; i < n; i++) {
		struct bpf_map_info info;
		int fd = bpf_object__find_map_fd_by_name(obj, names[i]);
		if (fd < 0)
			return addon_fail(e, "PIN", ENOENT, "%s: not in the object", names[i]);
		if (map_info(fd, names[i], &info, e))
			return -1;
		if (unlinkat(ps->dirfd, names[i], 0) && errno != ENOENT)
			return addon_fail(e, "PIN", errno, "%s/%s: cannot replace: %s", dir, names[i], strerror(errno));
		pin_path(path, sizeof path, ps->dirfd, names[i]);
		if (bpf_obj_pin(fd, path))
			return addon_fail(e, "PIN", errno, "%s/%s: %s", dir, names[i], strerror(errno));
		ps->ids[i] = info.id;
	}
	return 0;
}

/*
 * Removes the pins in *ps that still pin the map this process pinned there (the map is alive while the handle
 * holds it, so its id cannot have been reused), then the directory if this process made it and it is empty.
 */
static inline void unpin_maps(struct pin_set *ps, const char *const *names, int n)
{
	char path[320];
	struct addon_err ignored;
	struct stat at_fd, at_path;
	if (ps->dirfd < 0)
		return;
	for (int i = 0; i < n && i < PIN_MAX; i++) {
		struct bpf_map_info info;
		if (!ps->ids[i] || pin_entry(ps->dirfd, ps->dir, names[i], "PIN", &ignored) != 1)
			continue;
		pin_path(path, sizeof path, ps->dirfd, names[i]);
		int fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		if (map_info(fd, names[i], &info, &ignored) == 0 && info.id == ps->ids[i])
			unlinkat(ps->dirfd, names[i], 0);
		close(fd);
	}
	/* rmdir goes by name: only while the name still is the directory we pinned in. */
	if (ps->made && fstat(ps->dirfd, &at_fd) == 0 && lstat(ps->dir, &at_path) == 0 && at_fd.st_dev == at_path.st_dev &&
	    at_fd.st_ino == at_path.st_ino)
		rmdir(ps->dir);
	close(ps->dirfd);
	pin_set_init(ps);
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
