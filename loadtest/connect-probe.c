// SPDX-License-Identifier: Apache-2.0
/*
 * Bench client for bench-fastpath.ts and bench-kernel-telemetry.ts: times single TCP connects without a
 * runtime in the way. stdin: "<src> <dst> <port> <mode>" per line, mode "connect" (time connect() only) or
 * "echo" (connect, send, wait for the echo or the close). stdout: "<outcome> <elapsed_ns> <errno> <cpu_ns>",
 * outcome one of refused | connected | echoed | closed; elapsed_ns is wall time of connect() ("connect") or
 * of the whole exchange ("echo"); cpu_ns is this thread's CPU time from just before connect() to after
 * close() (CLOCK_THREAD_CPUTIME_ID: time spent preempted is not in it, the loopback softirq work the syscalls
 * run inline is). src "-" leaves the source to connect() (no bind: the port comes from the 4-tuple search, so
 * thousands of TIME_WAIT sockets from earlier rounds do not slow the next). argv[1], if given, pins the probe
 * to that CPU (benches comparing sides pin them all to one, so no side gets a quieter CPU). IPv4 only (the
 * benches use 127.0.0.0/8).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	char src[64], dst[64], mode[16];
	int port;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(atoi(argv[1]), &set);
		if (sched_setaffinity(0, sizeof set, &set)) {
			printf("pinfail 0 %d 0\n", errno);
			return 1;
		}
	}
	puts("ready");
	while (scanf("%63s %63s %d %15s", src, dst, &port, mode) == 4) {
		struct sockaddr_in s = {.sin_family = AF_INET}, d = {.sin_family = AF_INET, .sin_port = htons(port)};
		if (strcmp(src, "-") != 0)
			inet_pton(AF_INET, src, &s.sin_addr);
		inet_pton(AF_INET, dst, &d.sin_addr);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (strcmp(src, "-") != 0 && bind(fd, (struct sockaddr *)&s, sizeof s)) {
			printf("bindfail 0 %d 0\n", errno);
			close(fd);
			continue;
		}
		long long c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
		long long t0 = clock_ns(CLOCK_MONOTONIC);
		if (connect(fd, (struct sockaddr *)&d, sizeof d)) {
			long long t1 = clock_ns(CLOCK_MONOTONIC);
			int err = errno;
			close(fd);
			printf("refused %lld %d %lld\n", t1 - t0, err, clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0);
			continue;
		}
		if (strcmp(mode, "connect") == 0) {
			long long t1 = clock_ns(CLOCK_MONOTONIC);
			close(fd);
			printf("connected %lld 0 %lld\n", t1 - t0, clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0);
			continue;
		}
		char buf[16];
		ssize_t n = send(fd, "ping\n", 5, MSG_NOSIGNAL) == 5 ? recv(fd, buf, sizeof buf, 0) : -1;
		long long t1 = clock_ns(CLOCK_MONOTONIC);
		int err = n < 0 ? errno : 0;
		close(fd);
		printf("%s %lld %d %lld\n", n > 0 ? "echoed" : "closed", t1 - t0, err, clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0);
	}
	return 0;
}
