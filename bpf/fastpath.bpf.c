// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * verdict's kernel fast path: repeat verdicts user space already made, at connect() time.
 *
 * Policy logic stays in user space. The kernel only looks up (src, dst, dst port) in a bounded LRU map,
 * checks the entry's generation and expiry, and refuses the connect on a current deny. Every other
 * outcome (miss, stale, allow) lets the connection continue to the full Envoy + verdict path.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "fastpath.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Sized by the loader (bpf_map__set_max_entries) before load; this is only the default. */
struct {
	__uint(type, FP_VERDICTS_MAP_TYPE);
	__uint(max_entries, 65536);
	__type(key, struct fp_key);
	__type(value, struct fp_verdict);
} verdicts SEC(".maps");

/* One slot: the current generation. A bundle or trust change is one write here. */
struct {
	__uint(type, FP_GENERATION_MAP_TYPE);
	__uint(max_entries, FP_GENERATION_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} generation SEC(".maps");

struct {
	__uint(type, FP_COUNTERS_MAP_TYPE);
	__uint(max_entries, FP_CTR_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &slot);
	if (c)
		*c += 1;
}

/* Returns FP_ACTION_DENY only for a current, unexpired deny entry; 0 otherwise. */
static __always_inline int lookup_action(struct fp_key *key)
{
	__u32 zero = 0;
	__u64 *gen = bpf_map_lookup_elem(&generation, &zero);
	if (!gen)
		return 0;
	struct fp_verdict *v = bpf_map_lookup_elem(&verdicts, key);
	if (!v) {
		count(FP_CTR_MISS);
		return 0;
	}
	if (v->generation != *gen || v->expires_ns <= bpf_ktime_get_ns()) {
		/* An old generation or an expired entry is never obeyed; drop it so the slot is reused. */
		count(FP_CTR_STALE);
		bpf_map_delete_elem(&verdicts, key);
		return 0;
	}
	if (v->action == FP_ACTION_DENY) {
		count(FP_CTR_HIT_DENY);
		return FP_ACTION_DENY;
	}
	count(FP_CTR_HIT_ALLOW);
	return FP_ACTION_ALLOW;
}

/* cgroup/connect*: return 0 refuses the connect() with EPERM; 1 lets it proceed. */
SEC("cgroup/connect4")
int connect4(struct bpf_sock_addr *ctx)
{
	struct fp_key key = {};
	struct bpf_sock *sk = ctx->sk;
	if (!sk || ctx->type != 1 /* SOCK_STREAM */)
		return 1;
	key.family = FP_FAMILY_INET;
	key.src[0] = sk->src_ip4;
	key.dst[0] = ctx->user_ip4;
	key.dst_port = bpf_ntohs((__u16)ctx->user_port);
	return lookup_action(&key) == FP_ACTION_DENY ? 0 : 1;
}

SEC("cgroup/connect6")
int connect6(struct bpf_sock_addr *ctx)
{
	struct fp_key key = {};
	struct bpf_sock *sk = ctx->sk;
	if (!sk || ctx->type != 1 /* SOCK_STREAM */)
		return 1;
	key.family = FP_FAMILY_INET6;
	key.src[0] = sk->src_ip6[0];
	key.src[1] = sk->src_ip6[1];
	key.src[2] = sk->src_ip6[2];
	key.src[3] = sk->src_ip6[3];
	key.dst[0] = ctx->user_ip6[0];
	key.dst[1] = ctx->user_ip6[1];
	key.dst[2] = ctx->user_ip6[2];
	key.dst[3] = ctx->user_ip6[3];
	key.dst_port = bpf_ntohs((__u16)ctx->user_port);
	return lookup_action(&key) == FP_ACTION_DENY ? 0 : 1;
}
