// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * verdict's kernel telemetry: what each workload's TCP clients do on the wire, aggregated in the kernel per
 * (cgroup, destination address:port). Nothing goes to user space per packet or per connection: user space
 * reads the aggregates in batches at scrape time (docs/kernel-telemetry.md).
 *
 * connect4/6 (process context, cgroup-scoped) learn the cgroup and destination, count the attempt, see
 * whether an earlier connect program (the fast path) refused it, and tag the socket (a slot by its cookie).
 * Everything after that follows the tagged socket from sockops, which the kernel calls only for sockets of
 * the cgroups it is attached to (TCP_CONNECT: SYN time, and ask for the socket's state changes; ESTABLISHED:
 * latency histogram; CLOSE: how it ended, and bytes, RTT and retransmits read once from the socket), and marks
 * RSTs from the tcp_receive_reset tracepoint (global, but it fires on RSTs only). Why sockops and not the
 * host-wide state-change tracepoint: docs/kernel-telemetry.md.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>
#include "kernel-telemetry.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * The one kernel field read, by name: libbpf relocates its offset against the running kernel's BTF (CO-RE),
 * so no vmlinux.h is needed to build: the cookie, a plain load from the reset tracepoint's socket instead of a
 * bpf_get_socket_cookie() call, so that the RSTs of untagged sockets return without a helper call.
 */
typedef struct {
	__s64 counter;
} atomic64_t;

struct sock_common {
	atomic64_t skc_cookie;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

/* Sized by the loader (bpf_map__set_max_entries) before load; LRU, so the bound holds under any traffic. */
struct {
	__uint(type, KT_STATS_MAP_TYPE);
	__uint(max_entries, 16384);
	__type(key, struct kt_key);
	__type(value, struct kt_stats);
} conn_stats SEC(".maps");

/*
 * The sockets being followed: a direct-mapped table, slot = socket cookie mod KT_SOCK_SLOTS, owned by the
 * cookie written in it. An array lookup is a few instructions the verifier inlines: no hash, no lock, no
 * allocation (an LRU hash update plus lookups, and socket storage, each measured ~1.5 µs per connection here:
 * docs/kernel-telemetry.md). Cookies are handed out in sequence, so a slot is taken over only by a socket
 * made ~KT_SOCK_SLOTS cookies later (counted: KT_CTR_DISPLACED), much as an LRU of that size would evict.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KT_SOCK_SLOTS);
	__type(key, __u32);
	__type(value, struct kt_sock);
} conn_socks SEC(".maps");

struct {
	__uint(type, KT_HEALTH_MAP_TYPE);
	__uint(max_entries, KT_CTR_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} health SEC(".maps");

/* A zeroed value to insert a new aggregate from (too large for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kt_stats);
} zero_stats SEC(".maps");

static __always_inline void count_health(__u32 slot)
{
	__u64 *c = bpf_map_lookup_elem(&health, &slot);
	if (c)
		*c += 1;
}

/* This CPU's aggregate for key, created when absent. NULL only if the insert failed. */
static __always_inline struct kt_stats *stats_for(const struct kt_key *key)
{
	struct kt_stats *s = bpf_map_lookup_elem(&conn_stats, key);
	if (s)
		return s;
	__u32 zero = 0;
	struct kt_stats *z = bpf_map_lookup_elem(&zero_stats, &zero);
	if (!z)
		return NULL;
	/* NOEXIST: another CPU may have inserted it meanwhile; its slot for this CPU is zero as well. */
	bpf_map_update_elem(&conn_stats, key, z, BPF_NOEXIST);
	s = bpf_map_lookup_elem(&conn_stats, key);
	if (!s)
		count_health(KT_CTR_STATS_FULL);
	return s;
}

/* The slot of the socket with this cookie, if some socket holds it (check ks->cookie for which one). */
static __always_inline struct kt_sock *sock_slot(__u64 cookie)
{
	__u32 slot = (__u32)cookie & (KT_SOCK_SLOTS - 1);
	return bpf_map_lookup_elem(&conn_socks, &slot);
}

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0;
	if (v >> 32) {
		v >>= 32;
		r += 32;
	}
	if (v >> 16) {
		v >>= 16;
		r += 16;
	}
	if (v >> 8) {
		v >>= 8;
		r += 8;
	}
	if (v >> 4) {
		v >>= 4;
		r += 4;
	}
	if (v >> 2) {
		v >>= 2;
		r += 2;
	}
	if (v >> 1)
		r += 1;
	return r;
}

/*
 * Runs after the fast path's connect program when both are attached to the same cgroup (links run in
 * attach order; an ancestor's after a descendant's), so bpf_get_retval() tells whether it refused.
 * Always returns 1: telemetry never refuses anything itself.
 */
static __always_inline int on_connect(struct bpf_sock_addr *ctx, struct kt_key *key)
{
	key->cgroup_id = bpf_get_current_cgroup_id();
	struct kt_stats *s = stats_for(key);
	if (!s)
		return 1;
	s->attempts += 1;
	if (bpf_get_retval() != 0) {
		s->refused_fastpath += 1;
		return 1;
	}
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct kt_sock *ks = sock_slot(cookie);
	if (!ks) {
		count_health(KT_CTR_NO_STORAGE);
		return 1;
	}
	/* Taken by another socket that is still followed (or whose connect() failed before its SYN). */
	if (ks->cookie && ks->cookie != cookie)
		count_health(KT_CTR_DISPLACED);
	ks->cookie = cookie;
	ks->key = *key;
	ks->syn_ns = 0;
	ks->flags = 0;
	return 1;
}

SEC("cgroup/connect4")
int kt_connect4(struct bpf_sock_addr *ctx)
{
	struct kt_key key = {};
	if (ctx->type != 1 /* SOCK_STREAM */)
		return 1;
	key.family = 2;
	key.dst[0] = ctx->user_ip4;
	key.dst_port = bpf_ntohs((__u16)ctx->user_port);
	return on_connect(ctx, &key);
}

SEC("cgroup/connect6")
int kt_connect6(struct bpf_sock_addr *ctx)
{
	struct kt_key key = {};
	if (ctx->type != 1 /* SOCK_STREAM */)
		return 1;
	key.family = 10;
	key.dst[0] = ctx->user_ip6[0];
	key.dst[1] = ctx->user_ip6[1];
	key.dst[2] = ctx->user_ip6[2];
	key.dst[3] = ctx->user_ip6[3];
	key.dst_port = bpf_ntohs((__u16)ctx->user_port);
	return on_connect(ctx, &key);
}

static __always_inline void on_established(struct kt_sock *ks)
{
	struct kt_stats *s = stats_for(&ks->key);
	ks->flags |= KT_SOCK_ESTABLISHED;
	if (!s)
		return;
	s->established += 1;
	__u64 ns = ks->syn_ns ? bpf_ktime_get_ns() - ks->syn_ns : 0;
	__u32 slot = log2_u64(ns);
	if (slot >= KT_HIST_SLOTS)
		slot = KT_HIST_SLOTS - 1;
	s->hist[slot] += 1;
	s->handshake_ns_sum += ns;
}

/*
 * The first move to CLOSE decides how the connection ended, and carries its byte, RTT and retransmit totals
 * (read once here from the socket, rather than in a callback per retransmitted segment).
 */
static __always_inline void on_close(struct bpf_sock_ops *skops, struct kt_sock *ks, __u32 old_state)
{
	__u32 flags = ks->flags;
	struct kt_stats *s = stats_for(&ks->key);
	/* The socket is done: free its slot (later events of this socket find it not theirs). */
	ks->cookie = 0;
	if (!s)
		return;
	s->retransmits += skops->total_retrans;
	if (!(flags & KT_SOCK_ESTABLISHED)) {
		if (old_state == BPF_TCP_SYN_SENT) {
			if (flags & KT_SOCK_RESET)
				s->refused_peer += 1;
			else
				s->failed += 1;
		}
		return;
	}
	if (flags & KT_SOCK_RESET)
		s->reset_peer += 1;
	s->bytes_acked += skops->bytes_acked;
	s->bytes_received += skops->bytes_received;
	s->srtt_us_sum += skops->srtt_us >> 3; /* the kernel keeps srtt << 3 */
	s->srtt_samples += 1;
}

/*
 * Called by the kernel for the sockets of the attached cgroup only, ~5 times per connection without any
 * callback flag (RTO and window init, ECN, connect, established). TCP_CONNECT (tcp_connect(), right before the
 * SYN is built and sent) asks for STATE callbacks on tagged sockets: every state change of that socket, of
 * which ESTABLISHED and CLOSE matter. Every other op and state returns at the first tests, before any helper
 * call; a socket of the cgroup that is not tagged (connected before attach) after one slot lookup.
 */
SEC("sockops")
int kt_sockops(struct bpf_sock_ops *skops)
{
	__u32 op = skops->op;
	__u32 new_state = skops->args[1];
	if (op == BPF_SOCK_OPS_STATE_CB) {
		if (new_state != BPF_TCP_ESTABLISHED && new_state != BPF_TCP_CLOSE)
			return 1;
	} else if (op != BPF_SOCK_OPS_TCP_CONNECT_CB) {
		return 1;
	}
	/* connect4 asked for a tagged socket's cookie, so this hands out no new one for those. */
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct kt_sock *ks = sock_slot(cookie);
	if (!ks || ks->cookie != cookie)
		return 1;
	if (op == BPF_SOCK_OPS_TCP_CONNECT_CB) {
		ks->syn_ns = bpf_ktime_get_ns();
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
	} else if (new_state == BPF_TCP_ESTABLISHED) {
		on_established(ks);
	} else {
		on_close(skops, ks, skops->args[0]);
	}
	return 1;
}

/*
 * The tagged socket's slot, or NULL (the slot is free or another socket's). The cookie is read, not asked for:
 * a socket nobody asked a cookie for (connect4 does, for every socket it tags) has none, and returns here
 * without a helper call, without handing it a cookie and without touching the slot table.
 */
static __always_inline struct kt_sock *tagged(struct sock *sk)
{
	__u64 cookie = sk->__sk_common.skc_cookie.counter;
	if (!cookie)
		return NULL;
	struct kt_sock *ks = sock_slot(cookie);
	return ks && ks->cookie == cookie ? ks : NULL;
}

/* tcp_reset() fires this before it sets sk_err and moves the socket to CLOSE (above). */
SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(kt_receive_reset, struct sock *sk)
{
	struct kt_sock *ks = tagged(sk);
	if (ks)
		ks->flags |= KT_SOCK_RESET;
	return 0;
}
