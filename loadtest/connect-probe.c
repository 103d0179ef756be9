// SPDX-License-Identifier: Apache-2.0
/*
 * Bench client for bench-fastpath.ts: times single TCP connects without a runtime in the way.
 * stdin: "<src> <dst> <port> <mode>" per line, mode "connect" (time connect() only) or "echo" (connect,
 * send, wait for the echo or the close). stdout: "<outcome> <elapsed_ns> <errno>", outcome one of
 * refused | connected | echoed | closed. IPv4 only (the bench uses 127.0.0.0/8).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(void)
{
	char src[64], dst[64], mode[16];
	int port;
	setvbuf(stdout, NULL, _IOLBF, 0);
	puts("ready");
	while (scanf("%63s %63s %d %15s", src, dst, &port, mode) == 4) {
		struct sockaddr_in s = {.sin_family = AF_INET}, d = {.sin_family = AF_INET, .sin_port = htons(port)};
		inet_pton(AF_INET, src, &s.sin_addr);
		inet_pton(AF_INET, dst, &d.sin_addr);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, (struct sockaddr *)&s, sizeof s)) {
			printf("bindfail 0 %d\n", errno);
			close(fd);
			continue;
		}
		long long t0 = now_ns();
		if (connect(fd, (struct sockaddr *)&d, sizeof d)) {
			long long t1 = now_ns();
			printf("refused %lld %d\n", t1 - t0, errno);
			close(fd);
			continue;
		}
		if (strcmp(mode, "connect") == 0) {
			long long t1 = now_ns();
			printf("connected %lld 0\n", t1 - t0);
			close(fd);
			continue;
		}
		char buf[16];
		ssize_t n = send(fd, "ping\n", 5, MSG_NOSIGNAL) == 5 ? recv(fd, buf, sizeof buf, 0) : -1;
		long long t1 = now_ns();
		printf("%s %lld %d\n", n > 0 ? "echoed" : "closed", t1 - t0, n < 0 ? errno : 0);
		close(fd);
	}
	return 0;
}
