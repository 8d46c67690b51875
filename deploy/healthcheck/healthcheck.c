/*
 * healthcheck: the container's HEALTHCHECK probe, so the runtime image needs no shell, curl or wget.
 *
 *   healthcheck [PORT [PATH]]      default: 8080 /healthz
 *
 * Sends `GET PATH HTTP/1.0` to 127.0.0.1:PORT and exits 0 when the status is 200, 1 otherwise
 * (connection refused, timeout of 3 s, any other status). Built statically in the Dockerfile's
 * build stage; tested by scripts/check-deploy.sh against a running API.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *port_s = argc > 1 ? argv[1] : "8080";
    const char *path = argc > 2 ? argv[2] : "/healthz";
    long port = strtol(port_s, NULL, 10);
    if (port <= 0 || port > 65535 || path[0] != '/' || strlen(path) > 200) {
        fprintf(stderr, "usage: healthcheck [PORT [PATH]]\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        perror("healthcheck: socket");
        return 1;
    }
    struct timeval tv = {.tv_sec = 3, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("healthcheck: connect");
        return 1;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        perror("healthcheck: write");
        return 1;
    }
    char buf[64];
    size_t got = 0;
    while (got < sizeof buf - 1) {
        ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    /* "HTTP/1.x 200 ..." */
    if (got >= 12 && strncmp(buf, "HTTP/1.", 7) == 0 && strncmp(buf + 8, " 200", 4) == 0) return 0;
    fprintf(stderr, "healthcheck: %s on port %ld did not answer 200\n", path, port);
    return 1;
}
