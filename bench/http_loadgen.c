/*
 * Open-loop HTTP/1.1 load generator for `python -m bench api` (wrk2's idea, in one file).
 *
 * Request i is *scheduled* at t0 + i / rate, whatever the server does; when it is due and no
 * keep-alive connection is free it waits in a queue, and its latency is measured from its
 * scheduled time, not from when it could be sent. A server that stalls therefore shows the
 * stall in every request scheduled during it (no coordinated omission). Written in C with
 * epoll and a timerfd (nanosecond deadlines) because a Python generator on one core cannot send
 * 300+ requests/s on schedule and would measure its own lateness.
 *
 * The requests are prepared by the caller in a file: records of one kind byte (r, l, c...),
 * a 4-byte little-endian length and that many bytes of raw HTTP/1.1 request. They are sent in
 * file order, cycling if the run needs more. A response counts as ok when its status is 2xx.
 *
 * Options (integers):
 *   --port P           server port (127.0.0.1 only)
 *   --requests FILE    the prepared requests
 *   --rate R           requests per second
 *   --duration MS      schedule requests over this long
 *   --connections C    keep-alive connections (each carries one request at a time)
 *   --timeout MS       a request unanswered this long after its send is an error (default 5000)
 *
 * Prints one JSON object on stdout: per kind and in total, ok, errors by cause, p50/p99/max
 * latency in ms, and the achieved rate (responses per second over the run).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_KINDS 8
#define RECV_CAP (1 << 20)

typedef struct {
    char kind;
    const char *data;
    uint32_t len;
} request_t;

typedef struct {
    int fd;
    int connected;    /* connect() finished */
    long req;         /* index of the request on it, -1 when idle */
    size_t sent;      /* bytes of it written */
    char *buf;
    size_t used;
} conn_t;

static request_t *requests;
static size_t n_requests;
static double *sched_at; /* scheduled time of request i (s since t0) */
static double *latency;  /* ms, or -1 for an error */
static char *err_cause;  /* 0 ok, 's' non-2xx status, 'c' connection, 't' timeout */
static double *sent_at;
static conn_t *conns;
static int n_conns, port, epfd;
static long *queue; /* due requests waiting for a free connection (FIFO ring) */
static long q_head, q_tail, q_cap;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    printf("{\"error\": \"%s: %s\"}\n", what, strerror(errno));
    exit(1);
}

static void load_requests(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die("open requests");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *all = malloc(size);
    if (fread(all, 1, size, f) != (size_t)size) die("read requests");
    fclose(f);
    size_t cap = 1024;
    requests = malloc(cap * sizeof *requests);
    for (long at = 0; at + 5 <= size;) {
        if (n_requests == cap) requests = realloc(requests, (cap *= 2) * sizeof *requests);
        uint32_t len;
        memcpy(&len, all + at + 1, 4);
        requests[n_requests].kind = all[at];
        requests[n_requests].data = all + at + 5;
        requests[n_requests].len = len;
        n_requests++;
        at += 5 + len;
    }
    if (!n_requests) {
        errno = EINVAL;
        die("no requests in file");
    }
}

static void open_conn(conn_t *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->connected = 0;
    c->req = -1;
    c->used = 0;
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) == 0) c->connected = 1;
    else if (errno != EINPROGRESS) die("connect");
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static void finish(long req, double lat_ms, char cause) {
    latency[req] = cause ? -1 : lat_ms;
    err_cause[req] = cause;
}

/* The connection broke or timed out: its request (if any) is an error; reconnect. */
static void reset_conn(conn_t *c, char cause) {
    if (c->req >= 0) finish(c->req, 0, cause);
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    open_conn(c);
}

static void try_send(conn_t *c) {
    if (c->req < 0 || !c->connected) return;
    request_t *r = &requests[c->req % n_requests];
    while (c->sent < r->len) {
        ssize_t n = write(c->fd, r->data + c->sent, r->len - c->sent);
        if (n < 0) {
            if (errno == EAGAIN) return;
            reset_conn(c, 'c');
            return;
        }
        c->sent += n;
    }
}

static void dispatch(void) {
    for (int i = 0; i < n_conns && q_head < q_tail; i++) {
        conn_t *c = &conns[i];
        if (c->req >= 0) continue;
        c->req = queue[q_head++ % q_cap];
        c->sent = 0;
        c->used = 0;
        sent_at[c->req] = now_s();
        try_send(c);
    }
}

/* A whole response in the buffer: status (or -1 while incomplete) and whether to close. */
static int parse_response(conn_t *c, int *close_after) {
    c->buf[c->used] = 0;
    char *end = strstr(c->buf, "\r\n\r\n");
    if (!end) return -1;
    size_t head = end + 4 - c->buf;
    int status = 0;
    if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1) return 0;
    long length = 0;
    *close_after = 0;
    for (char *line = strstr(c->buf, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
        if (!strncasecmp(line, "content-length:", 15)) length = strtol(line + 15, NULL, 10);
        else if (!strncasecmp(line, "connection:", 11)) {
            const char *value = line + 11 + strspn(line + 11, " ");
            if (!strncasecmp(value, "close", 5)) *close_after = 1;
        }
    }
    if (c->used < head + length) return -1;
    return status;
}

static void on_readable(conn_t *c) {
    for (;;) {
        if (c->used + 1 >= RECV_CAP) {
            reset_conn(c, 'c');
            return;
        }
        ssize_t n = read(c->fd, c->buf + c->used, RECV_CAP - 1 - c->used);
        if (n == 0 || (n < 0 && errno != EAGAIN)) {
            reset_conn(c, 'c');
            return;
        }
        if (n < 0) break;
        c->used += n;
    }
    if (c->req < 0) return;
    int close_after = 0;
    int status = parse_response(c, &close_after);
    if (status < 0) return;
    double t = now_s();
    finish(c->req, (t - sched_at[c->req]) * 1000.0, (status >= 200 && status < 300) ? 0 : 's');
    c->req = -1;
    c->used = 0;
    if (close_after) reset_conn(c, 'c');
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report_kind(const char *name, char kind, long total, double elapsed, int last) {
    double *lat = malloc((total + 1) * sizeof *lat);
    long ok = 0, n = 0, status = 0, conn = 0, timeout = 0;
    for (long i = 0; i < total; i++) {
        if (kind && requests[i % n_requests].kind != kind) continue;
        n++;
        if (err_cause[i] == 0) lat[ok++] = latency[i];
        else if (err_cause[i] == 's') status++;
        else if (err_cause[i] == 'c') conn++;
        else timeout++;
    }
    qsort(lat, ok, sizeof *lat, cmp_double);
    double p50 = ok ? lat[(long)(0.50 * (ok - 1))] : 0;
    double p99 = ok ? lat[(long)(0.99 * (ok - 1))] : 0;
    double max = ok ? lat[ok - 1] : 0;
    printf("\"%s\": {\"requests\": %ld, \"ok\": %ld, \"errors\": %ld, \"status_errors\": %ld, "
           "\"connection_errors\": %ld, \"timeouts\": %ld, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
           "\"max_ms\": %.3f, \"achieved_rps\": %.1f}%s",
           name, n, ok, status + conn + timeout, status, conn, timeout, p50, p99, max,
           elapsed > 0 ? ok / elapsed : 0, last ? "" : ", ");
    free(lat);
}

int main(int argc, char **argv) {
    const char *path = NULL;
    double rate = 100, duration_ms = 1000, timeout_ms = 5000;
    n_conns = 32;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--requests")) path = argv[i + 1];
        else if (!strcmp(argv[i], "--rate")) rate = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--duration")) duration_ms = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--connections")) n_conns = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--timeout")) timeout_ms = atof(argv[i + 1]);
    }
    if (!path || !port || rate <= 0 || n_conns <= 0) {
        errno = EINVAL;
        die("usage: --port P --requests FILE --rate R --duration MS [--connections C]");
    }
    load_requests(path);
    long total = (long)(rate * duration_ms / 1000.0);
    if (total < 1) total = 1;
    sched_at = malloc(total * sizeof *sched_at);
    sent_at = calloc(total, sizeof *sent_at);
    latency = malloc(total * sizeof *latency);
    err_cause = malloc(total);
    for (long i = 0; i < total; i++) {
        sched_at[i] = i / rate;
        latency[i] = -1;
        err_cause[i] = 't'; /* until answered */
    }
    q_cap = total;
    queue = malloc(q_cap * sizeof *queue);

    epfd = epoll_create1(0);
    conns = calloc(n_conns, sizeof *conns);
    for (int i = 0; i < n_conns; i++) {
        conns[i].buf = malloc(RECV_CAP);
        open_conn(&conns[i]);
    }
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev);

    double t0 = now_s() + 0.05; /* let the connections open */
    for (long i = 0; i < total; i++) sched_at[i] += t0;
    long next = 0;
    double drain_until = t0 + duration_ms / 1000.0 + timeout_ms / 1000.0;
    struct epoll_event events[256];
    for (;;) {
        double t = now_s();
        while (next < total && sched_at[next] <= t) queue[q_tail++ % q_cap] = next++;
        dispatch();
        /* Timeouts: a request in flight too long breaks its connection. */
        for (int i = 0; i < n_conns; i++)
            if (conns[i].req >= 0 && sent_at[conns[i].req] > 0 &&
                (t - sent_at[conns[i].req]) * 1000.0 > timeout_ms)
                reset_conn(&conns[i], 't');
        int busy = q_head < q_tail;
        for (int i = 0; i < n_conns && !busy; i++) busy = conns[i].req >= 0;
        if (next >= total && !busy) break;
        if (t > drain_until) break;
        double wake = next < total ? sched_at[next] : t + 0.01;
        if (wake > t + 0.01) wake = t + 0.01;
        struct itimerspec its = {0};
        its.it_value.tv_sec = (time_t)wake;
        its.it_value.tv_nsec = (long)((wake - (time_t)wake) * 1e9);
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
        timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        int n = epoll_wait(epfd, events, 256, -1);
        for (int e = 0; e < n; e++) {
            conn_t *c = events[e].data.ptr;
            if (c == NULL) {
                uint64_t expirations;
                if (read(tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN) die("timer");
                continue;
            }
            if (events[e].events & (EPOLLERR | EPOLLHUP)) {
                reset_conn(c, 'c');
                continue;
            }
            if (events[e].events & EPOLLOUT) {
                c->connected = 1;
                try_send(c);
            }
            if (events[e].events & EPOLLIN) on_readable(c);
        }
    }
    double elapsed = now_s() - t0;
    if (elapsed < duration_ms / 1000.0) elapsed = duration_ms / 1000.0;
    /* A request never sent before the end (queue still full) stays a timeout. */
    printf("{\"scheduled\": %ld, \"rate\": %.1f, \"elapsed_s\": %.3f, \"connections\": %d, ",
           total, rate, elapsed, n_conns);
    char kinds[MAX_KINDS];
    int n_kinds = 0;
    for (size_t i = 0; i < n_requests && n_kinds < MAX_KINDS; i++)
        if (!memchr(kinds, requests[i].kind, n_kinds)) kinds[n_kinds++] = requests[i].kind;
    for (int k = 0; k < n_kinds; k++) {
        char name[2] = {kinds[k], 0};
        report_kind(name, kinds[k], total, elapsed, 0);
    }
    report_kind("all", 0, total, elapsed, 1);
    printf("}\n");
    return 0;
}
