/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The structs shared by the kernel telemetry programs (kernel-telemetry.bpf.c), the native addon
 * (addon/telemetry-addon.c) and user space (src/kerneltelemetry/telemetry-layout.ts). A test compares the
 * layouts as the C compiler produced them with the user-space numbers; change all three together.
 */
#ifndef VERDICT_KERNEL_TELEMETRY_H
#define VERDICT_KERNEL_TELEMETRY_H

#include <linux/types.h>

/*
 * SYN→ESTABLISHED latency, log2 of nanoseconds: slot i counts handshakes of [2^i, 2^(i+1)) ns, the last
 * slot everything from 2^(KT_HIST_SLOTS-1) ns (~34 s) on.
 */
#define KT_HIST_SLOTS 36

/*
 * Slots of the followed-socket table (connect → close), a power of two: socket cookie mod KT_SOCK_SLOTS.
 * A socket made this many cookies after a still-open one takes its slot; the older one is no longer followed.
 */
#define KT_SOCK_SLOTS 65536

/*
 * The types of the maps other tools read from their pins: kernel-telemetry.bpf.c defines them with these, and
 * the addon refuses a pinned map that differs (bpf/addon/addon-common.h). Health keys are __u32, values __u64.
 */
#define KT_STATS_MAP_TYPE BPF_MAP_TYPE_LRU_PERCPU_HASH /* struct kt_key -> struct kt_stats, per CPU */
#define KT_HEALTH_MAP_TYPE BPF_MAP_TYPE_PERCPU_ARRAY   /* KT_CTR_COUNT slots */

/* Per-CPU health counters of the programs themselves (array index). */
#define KT_CTR_NO_STORAGE 0   /* the socket could not be tagged: that connection is not followed */
#define KT_CTR_STATS_FULL 1   /* the stats entry could not be inserted (never expected with an LRU map) */
#define KT_CTR_DISPLACED 2    /* connect4 took a slot another socket still held (see KT_SOCK_SLOTS) */
#define KT_CTR_COUNT 3

/* kt_sock flags */
#define KT_SOCK_ESTABLISHED 1
#define KT_SOCK_RESET 2

/*
 * One aggregate: the workload's cgroup v2 id (the cgroup directory's inode) and the destination the socket
 * connected to. Addresses in network byte order; IPv4 fills dst[0], the rest is zero.
 */
struct kt_key {
	__u64 cgroup_id;
	__u32 dst[4];
	__u16 dst_port; /* host byte order */
	__u8 family;    /* 2 (AF_INET) or 10 (AF_INET6) */
	__u8 pad[5];    /* must be zero (part of the hash) */
};

/* Counters of one (cgroup, destination), per CPU in the kernel; the addon sums the CPUs. */
struct kt_stats {
	__u64 attempts;         /* connect() calls on a TCP socket */
	__u64 refused_fastpath; /* of them, refused by the fast path's connect program (EPERM, no SYN) */
	__u64 established;      /* handshakes completed (SYN-ACK received) */
	__u64 refused_peer;     /* the SYN was answered by a RST (ECONNREFUSED: closed port, resetting peer) */
	__u64 reset_peer;       /* an established connection ended by a RST from the peer */
	__u64 failed;           /* closed in SYN_SENT without a RST (timeout, unreachable, abort) */
	__u64 retransmits;      /* retransmitted segments, SYNs included */
	__u64 bytes_acked;      /* bytes sent and acknowledged, counted when the connection closes */
	__u64 bytes_received;   /* counted when the connection closes */
	__u64 srtt_us_sum;      /* smoothed RTT at close, µs, summed over closed connections */
	__u64 srtt_samples;     /* connections that contributed to srtt_us_sum */
	__u64 handshake_ns_sum; /* SYN→ESTABLISHED, summed (the histogram's sum) */
	__u64 hist[KT_HIST_SLOTS];
};

/* Per followed socket: its cookie (the slot's owner, 0 when free), what connect4 learnt and the SYN time. */
struct kt_sock {
	__u64 cookie;
	struct kt_key key;
	__u64 syn_ns;
	__u32 flags;
	__u32 pad;
};

#endif
