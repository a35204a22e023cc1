/* Connection storm for bench/edge: fast enough that the kernel, not the client, is measured.
 *   storm connect SRC DST PORT N WINDOW_S   N non-blocking connects from SRC; prints JSON with
 *                                           how many were established within WINDOW_S
 *   storm serve PORT                        accept-and-close loop on 0.0.0.0/[::]:PORT
 * Sockets are closed with SO_LINGER 0 (RST): no TIME_WAIT, and a SYN the guard dropped is simply
 * abandoned (no retransmit after the window). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fill(const char* host, int port, struct sockaddr_storage* ss, socklen_t* len) {
  memset(ss, 0, sizeof(*ss));
  if (strchr(host, ':')) {
    struct sockaddr_in6* a = (struct sockaddr_in6*)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    *len = sizeof(*a);
    return inet_pton(AF_INET6, host, &a->sin6_addr) == 1 ? AF_INET6 : -1;
  }
  struct sockaddr_in* a = (struct sockaddr_in*)ss;
  a->sin_family = AF_INET;
  a->sin_port = htons(port);
  *len = sizeof(*a);
  return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? AF_INET : -1;
}

static int serve(int port) {
  int fd = socket(AF_INET6, SOCK_STREAM, 0), one = 1, zero = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
  if (bind(fd, (struct sockaddr*)&a, sizeof(a)) || listen(fd, 65535)) {
    perror("storm serve");
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  for (;;) {
    int c = accept(fd, NULL, NULL);
    if (c >= 0) close(c);
  }
}

int main(int argc, char** argv) {
  if (argc == 3 && !strcmp(argv[1], "serve")) return serve(atoi(argv[2]));
  if (argc != 7 || strcmp(argv[1], "connect")) {
    fprintf(stderr, "usage: storm connect SRC DST PORT N WINDOW_S | storm serve PORT\n");
    return 2;
  }
  int n = atoi(argv[5]);
  double window = atof(argv[6]);
  struct rlimit rl = {n + 100, n + 100};
  setrlimit(RLIMIT_NOFILE, &rl);
  struct sockaddr_storage src, dst;
  socklen_t slen, dlen;
  int fam = fill(argv[2], 0, &src, &slen);
  if (fam < 0 || fill(argv[3], atoi(argv[4]), &dst, &dlen) != fam) {
    fprintf(stderr, "storm: bad address\n");
    return 2;
  }
  int ep = epoll_create1(0);
  int* fds = calloc(n, sizeof(int));
  int opened = 0, pending = 0, ok = 0, refused = 0;
  struct linger lg = {1, 0};
  double t0 = now(), last_ok = 0;
  for (int i = 0; i < n; i++) {
    int fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) break;
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    if (bind(fd, (struct sockaddr*)&src, slen) ||
        (connect(fd, (struct sockaddr*)&dst, dlen) && errno != EINPROGRESS)) {
      close(fd);
      refused++;
      continue;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    fds[opened++] = fd;
    pending++;
  }
  double sent = now() - t0;
  struct epoll_event evs[512];
  while (pending > 0) {
    int left_ms = (int)((t0 + window - now()) * 1000);
    if (left_ms <= 0) break;
    int k = epoll_wait(ep, evs, 512, left_ms);
    for (int i = 0; i < k; i++) {
      int fd = evs[i].data.fd, err = 0;
      socklen_t el = sizeof(err);
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
      epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
      pending--;
      if (err == 0) {
        ok++;
        last_ok = now() - t0;
      } else {
        refused++;
      }
    }
  }
  double elapsed = now() - t0;
  for (int i = 0; i < opened; i++) close(fds[i]);
  printf("{\"attempted\": %d, \"connected\": %d, \"refused\": %d, \"pending\": %d, "
         "\"send_s\": %.6f, \"elapsed_s\": %.6f, \"last_ok_s\": %.6f}\n",
         n, ok, refused, pending, sent, elapsed, last_ok);
  return 0;
}
