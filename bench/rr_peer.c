/* One TCP_RR client for two servers: sockperf's server (sockperf sr) and tcplab's
 * uppercase server. It sends 64-byte requests one at a time, each a sockperf
 * ping-pong message whose every byte is already upper case or not a letter (the
 * sockperf header with a fixed sequence number, then 'A's): sockperf sr answers it,
 * and the uppercase server sends it back unchanged. So both servers are driven by
 * the very same client, and only the servers differ.
 *
 *   cc -O2 -o rr_peer bench/rr_peer.c && ./rr_peer 127.0.0.1 PORT SECONDS
 *
 * Prints one line: transactions, seconds, transactions per second. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SIZE 64

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: rr_peer HOST PORT SECONDS\n");
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
        fprintf(stderr, "rr_peer: bad address %s\n", argv[1]);
        return 2;
    }
    double seconds = atof(argv[3]);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* as sockperf pp */
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("rr_peer: connect");
        return 1;
    }
    /* sockperf's header: sequence number (8 octets), flags (2: client, pong
     * request), length (4), network order; none of its octets is a lower-case letter. */
    unsigned char request[SIZE], reply[SIZE];
    memset(request, 'A', SIZE);
    memset(request, 0, 14);
    request[7] = 1;
    request[9] = 3;
    request[13] = SIZE;
    long transactions = 0;
    double start = now(), end = start + seconds, t = start;
    while (t < end) {
        if (send(fd, request, SIZE, 0) != SIZE) {
            perror("rr_peer: send");
            return 1;
        }
        for (size_t got = 0; got < SIZE;) {
            ssize_t n = recv(fd, reply + got, SIZE - got, 0);
            if (n <= 0) {
                fprintf(stderr, "rr_peer: the server closed or failed after %ld\n", transactions);
                return 1;
            }
            got += n;
        }
        if (memcmp(reply + 14, request + 14, SIZE - 14) != 0) {
            fprintf(stderr, "rr_peer: a reply's payload differs from its request\n");
            return 1;
        }
        transactions++;
        t = now();
    }
    printf("%ld %.6f %.1f\n", transactions, t - start, transactions / (t - start));
    return 0;
}
