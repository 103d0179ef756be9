/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The structs shared by the kernel programs (fastpath.bpf.c), the native addon (fastpath-addon.c) and
 * user space (src/fastpath/map-layout.ts). A test compares the layouts; change all three together.
 */
#ifndef VERDICT_FASTPATH_H
#define VERDICT_FASTPATH_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define FP_FAMILY_INET 2   /* AF_INET */
#define FP_FAMILY_INET6 10 /* AF_INET6 */

#define FP_ACTION_ALLOW 1
#define FP_ACTION_DENY 2

/*
 * The maps' types and fixed sizes: fastpath.bpf.c defines its maps with these, and the addon refuses a pinned
 * map that differs (bpf/addon/addon-common.h). Array keys are __u32, generation and counter values __u64.
 */
#define FP_VERDICTS_MAP_TYPE BPF_MAP_TYPE_LRU_HASH /* struct fp_key -> struct fp_verdict */
#define FP_GENERATION_MAP_TYPE BPF_MAP_TYPE_ARRAY
#define FP_GENERATION_SLOTS 1
#define FP_COUNTERS_MAP_TYPE BPF_MAP_TYPE_PERCPU_ARRAY /* FP_CTR_COUNT slots */

/* Per-CPU counter slots (array index). */
#define FP_CTR_HIT_ALLOW 0
#define FP_CTR_HIT_DENY 1
#define FP_CTR_MISS 2
#define FP_CTR_STALE 3
#define FP_CTR_COUNT 4

/*
 * What the kernel can see at connect(): the socket's bound source address, the destination address and
 * port. Addresses are in network byte order; an IPv4 address fills src[0]/dst[0] and the rest is zero.
 */
struct fp_key {
	__u32 src[4];
	__u32 dst[4];
	__u16 dst_port; /* host byte order */
	__u8 family;    /* FP_FAMILY_INET or FP_FAMILY_INET6 */
	__u8 pad;       /* must be zero (part of the hash) */
};

/* One mirrored verdict. The kernel ignores it unless generation matches and expires_ns is in the future. */
struct fp_verdict {
	__u64 generation; /* must equal the value in the generation map */
	__u64 expires_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u32 action;     /* FP_ACTION_ALLOW or FP_ACTION_DENY */
	__u32 pad;
};

#endif
