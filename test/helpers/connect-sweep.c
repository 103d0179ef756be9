// SPDX-License-Identifier: Apache-2.0
/*
 * Test and bench client: `connect-sweep <count> <port> <mode>` makes <count> blocking TCP connects.
 * mode "distinct": each to its own address 127.(1 + i/65536).x.y (count distinct destinations, closed port: RST).
 * mode "same": all to 127.0.0.1:<port> (a listener that accepts and closes). Prints "<ok> <failed>".
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	long count = strtol(argv[1], NULL, 10);
	int port = atoi(argv[2]);
	int distinct = strcmp(argv[3], "distinct") == 0;
	long ok = 0, failed = 0;
	for (long i = 0; i < count; i++) {
		struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons(port)};
		uint32_t n = (uint32_t)i;
		d.sin_addr.s_addr = htonl(distinct ? (127u << 24) | ((1u + (n >> 16)) << 16) | (n & 0xffff) : 0x7f000001);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&d, sizeof d) == 0)
			ok++;
		else
			failed++;
		close(fd);
	}
	printf("%ld %ld\n", ok, failed);
	return 0;
}
