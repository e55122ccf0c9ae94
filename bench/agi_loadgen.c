/*
 * FastAGI load generator for `python -m bench agi` / `python -m bench robustness`.
 *
 * Plays Asterisk's side of FastAGI: connects to 127.0.0.1:PORT, sends the agi_ environment
 * (a Hindi caller name included), then reads each command line and answers it the way
 * res_agi.c does ("200 result=..."). Written in C with epoll so that the generator, which
 * shares the machine's two cores with the server under test, is never the bottleneck: a Python
 * generator would spend more CPU per command than the server it measures.
 *
 * Measures, per command after the first, the "turnaround": time from our reply leaving this
 * process to the next command line arriving, i.e. the server's latency for one script step.
 * With --hold, turnarounds are also reported in two windows: "release" (replies sent in the
 * first think-max ms after the release, while the parked sessions' first replies go out) and
 * "steady" (everything after). The generator's own run-queue wait (/proc/self/schedstat) and
 * involuntary context switches are reported too: on a shared machine they are latency that is
 * neither the server's nor the network's.
 *
 * Options (all numbers are integers):
 *   --port P           server port (127.0.0.1 only)
 *   --sessions N       sessions to run in total
 *   --concurrency C    sessions open at once
 *   --commands K       commands a complete session has (it then expects EOF)
 *   --think-min MS     Asterisk's time to "execute" a command (a prompt playing) before the
 *   --think-max MS     reply: uniform in [min, max]; 0 0 replies at once (throughput mode)
 *   --hold             park every session at its first command until all N are connected,
 *                      print "HELD" and wait for a line on stdin (the caller measures the
 *                      server's memory then); replies are then released staggered over
 *                      [think-min, think-max]
 *   --idle-timeout MS  a session silent for this long counts as timed out (default 10000)
 *   --deadline MS      stop everything after this long (default 120000)
 *   --seed S           seed for think times
 *
 * Prints one JSON object on stdout when done.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define INBUF 4096

enum state { FREE = 0, CONNECTING, WAIT_CMD, THINK, PARKED };

struct conn {
    int fd;
    enum state st;
    int cmds;                 /* commands received */
    int id;                   /* session number */
    uint64_t reply_sent_ns;   /* when our last reply left */
    uint64_t last_activity_ns;
    uint64_t env_sent_ns;     /* when the environment left */
    uint64_t wake_ns;         /* THINK: when to send the reply */
    char reply[64];
    int reply_len;
    int inlen;
    char in[INBUF];
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t xorshift(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int port = 0, total = 1000, concurrency = 50, commands = 10;
static int think_min = 0, think_max = 0, hold = 0;
static int idle_timeout_ms = 10000, deadline_ms = 120000;

static struct conn *conns;
static int epfd;
static int started = 0, ok = 0, failed = 0, timed_out = 0, connect_errors = 0, open_now = 0;
static int parked = 0, released = 0;
struct series { uint64_t *v; size_t n, cap; };
static struct series all_s, release_s, steady_s;
static uint64_t *samples;
static size_t nsamples = 0;
static uint64_t released_ns = 0; /* when parked sessions were released (0: never parked) */
static uint64_t first_cmd_sum_ns = 0;
static uint64_t first_cmd_n = 0;

static uint64_t think_ns(void) {
    if (think_max <= 0) return 0;
    uint64_t span = (uint64_t)(think_max - think_min) + 1;
    return ((uint64_t)think_min + xorshift() % span) * 1000000ull;
}

static void push(struct series *s, uint64_t ns) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 65536;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v) { perror("realloc"); exit(2); }
    }
    s->v[s->n++] = ns;
}

static void add_sample(uint64_t ns, uint64_t reply_sent) {
    push(&all_s, ns);
    if (!released_ns) return;
    if (reply_sent < released_ns + (uint64_t)think_max * 1000000ull) push(&release_s, ns);
    else push(&steady_s, ns);
}

static void finish(struct conn *c, int outcome) { /* 0 ok, 1 failed, 2 timed out */
    if (outcome == 0) ok++; else if (outcome == 1) failed++; else timed_out++;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->st = FREE;
    open_now--;
}

static void start_session(struct conn *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) { perror("socket"); exit(2); }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = fd;
    c->st = CONNECTING;
    c->cmds = 0;
    c->inlen = 0;
    c->id = started++;
    c->last_activity_ns = now_ns();
    open_now++;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        connect_errors++;
        finish(c, 1);
    }
}

static int write_all(int fd, const char *buf, int len) {
    int off = 0;
    while (off < len) {
        ssize_t n = write(fd, buf + off, (size_t)(len - off));
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1; /* replies and the environment are < 1 KiB: EAGAIN is not expected */
        }
        off += (int)n;
    }
    return 0;
}

static void send_env(struct conn *c) {
    char env[1024];
    int n = snprintf(env, sizeof env,
        "agi_network: yes\n"
        "agi_network_script: ivr\n"
        "agi_request: agi://127.0.0.1:4573/ivr\n"
        "agi_channel: PJSIP/trunk-%08x\n"
        "agi_language: hi\n"
        "agi_type: PJSIP\n"
        "agi_uniqueid: 1718000000.%d\n"
        "agi_version: 22.0.0\n"
        "agi_callerid: 9198%08d\n"
        "agi_calleridname: \xe0\xa4\xb0\xe0\xa4\xae\xe0\xa5\x87\xe0\xa4\xb6 "
        "\xe0\xa4\x95\xe0\xa5\x81\xe0\xa4\xae\xe0\xa4\xbe\xe0\xa4\xb0\n"
        "agi_callingpres: 0\n"
        "agi_callingani2: 0\n"
        "agi_callington: 0\n"
        "agi_callingtns: 0\n"
        "agi_dnid: 1076\n"
        "agi_rdnis: unknown\n"
        "agi_context: from-trunk\n"
        "agi_extension: 1076\n"
        "agi_priority: 2\n"
        "agi_enhanced: 0.0\n"
        "agi_accountcode: \n"
        "agi_threadid: 140000000000%d\n"
        "\n",
        (unsigned)c->id, c->id, c->id % 100000000, c->id % 1000);
    if (write_all(c->fd, env, n) < 0) finish(c, 1);
    c->env_sent_ns = now_ns();
}

/* Answer as res_agi.c does for the commands of the benchmark IVR. */
static void make_reply(struct conn *c, const char *line) {
    const char *r;
    if (strncmp(line, "STREAM FILE", 11) == 0) r = "200 result=0 endpos=16000\n";
    else if (strncmp(line, "GET DATA", 8) == 0) r = "200 result=1\n";
    else if (strncmp(line, "ANSWER", 6) == 0) r = "200 result=0\n";
    else if (strncmp(line, "SET VARIABLE", 12) == 0) r = "200 result=1\n";
    else if (strncmp(line, "GET VARIABLE", 12) == 0) r = "200 result=1 (hi)\n";
    else r = "200 result=0\n";
    c->reply_len = (int)strlen(r);
    memcpy(c->reply, r, (size_t)c->reply_len + 1);
}

static void send_reply(struct conn *c) {
    if (write_all(c->fd, c->reply, c->reply_len) < 0) { finish(c, 1); return; }
    c->reply_sent_ns = now_ns();
    c->st = WAIT_CMD;
}

static void on_line(struct conn *c, const char *line, uint64_t t) {
    c->cmds++;
    if (c->cmds > 1) add_sample(t - c->reply_sent_ns, c->reply_sent_ns);
    else { first_cmd_sum_ns += t - c->env_sent_ns; first_cmd_n++; }
    make_reply(c, line);
    if (hold && c->cmds == 1 && !released) {
        c->st = PARKED;
        parked++;
        return;
    }
    uint64_t d = think_ns();
    if (d == 0) send_reply(c);
    else { c->st = THINK; c->wake_ns = t + d; }
}

static void on_readable(struct conn *c) {
    for (;;) {
        ssize_t n = read(c->fd, c->in + c->inlen, (size_t)(INBUF - 1 - c->inlen));
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            finish(c, 1);
            return;
        }
        if (n == 0) { /* the server closed: a complete session ends exactly here */
            finish(c, c->cmds == commands && c->inlen == 0 ? 0 : 1);
            return;
        }
        uint64_t t = now_ns();
        c->last_activity_ns = t;
        c->inlen += (int)n;
        int start = 0;
        for (int i = 0; i < c->inlen; i++) {
            if (c->in[i] == '\n') {
                c->in[i] = 0;
                on_line(c, c->in + start, t);
                if (c->fd < 0) return;
                start = i + 1;
            }
        }
        memmove(c->in, c->in + start, (size_t)(c->inlen - start));
        c->inlen -= start;
        if (c->inlen >= INBUF - 1) { finish(c, 1); return; }
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p) {
    if (nsamples == 0) return 0.0;
    size_t i = (size_t)(p * (double)(nsamples - 1) + 0.5);
    return (double)samples[i] / 1000.0;
}

static double spct(const struct series *s, double p) {
    if (s->n == 0) return 0.0;
    size_t i = (size_t)(p * (double)(s->n - 1) + 0.5);
    return (double)s->v[i] / 1000.0;
}

static double run_queue_wait_s(void) { /* second field of schedstat: ns waiting on a run queue */
    FILE *f = fopen("/proc/self/schedstat", "r");
    unsigned long long run = 0, wait = 0;
    if (!f) return -1.0;
    if (fscanf(f, "%llu %llu", &run, &wait) != 2) wait = 0;
    fclose(f);
    return (double)wait / 1e9;
}

int main(int argc, char **argv) {
    int seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : "0";
        if (!strcmp(a, "--hold")) { hold = 1; continue; }
        if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--sessions")) total = atoi(v);
        else if (!strcmp(a, "--concurrency")) concurrency = atoi(v);
        else if (!strcmp(a, "--commands")) commands = atoi(v);
        else if (!strcmp(a, "--think-min")) think_min = atoi(v);
        else if (!strcmp(a, "--think-max")) think_max = atoi(v);
        else if (!strcmp(a, "--idle-timeout")) idle_timeout_ms = atoi(v);
        else if (!strcmp(a, "--deadline")) deadline_ms = atoi(v);
        else if (!strcmp(a, "--seed")) seed = atoi(v);
        else { fprintf(stderr, "unknown option %s\n", a); return 2; }
        i++;
    }
    if (port <= 0 || total <= 0 || concurrency <= 0) { fprintf(stderr, "bad options\n"); return 2; }
    if (concurrency > total) concurrency = total;
    if (hold) concurrency = total;
    if (think_max < think_min) think_max = think_min;
    rng_state ^= (uint64_t)seed * 0x9E3779B97F4A7C15ull;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }

    conns = calloc((size_t)concurrency, sizeof *conns);
    struct epoll_event *evs = calloc((size_t)concurrency, sizeof *evs);
    if (!conns || !evs) { perror("calloc"); return 2; }
    epfd = epoll_create1(0);
    uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)deadline_ms * 1000000ull;
    for (int i = 0; i < concurrency; i++) { conns[i].fd = -1; start_session(&conns[i]); }

    int held_reported = 0;
    for (;;) {
        uint64_t t = now_ns();
        if (t >= deadline) break;
        /* timers: think times and idle timeouts (a linear scan; <= a few thousand slots) */
        uint64_t next = t + 50000000ull;
        for (int i = 0; i < concurrency; i++) {
            struct conn *c = &conns[i];
            if (c->st == FREE) continue;
            if (c->st == THINK) {
                if (c->wake_ns <= t) send_reply(c);
                else if (c->wake_ns < next) next = c->wake_ns;
            }
            if (c->st == WAIT_CMD || c->st == CONNECTING) {
                if (t - c->last_activity_ns > (uint64_t)idle_timeout_ms * 1000000ull) finish(c, 2);
            }
        }
        if (hold && !released && started >= total && open_now > 0 && parked == open_now &&
            !held_reported) {
            printf("HELD\n");
            fflush(stdout);
            char line[16];
            if (!fgets(line, sizeof line, stdin)) { /* caller gone: release anyway */ }
            held_reported = 1;
            released = 1;
            uint64_t r = now_ns();
            released_ns = r;
            for (int i = 0; i < concurrency; i++) {
                struct conn *c = &conns[i];
                if (c->st != PARKED) continue;
                uint64_t d = think_ns();
                c->st = THINK;
                c->wake_ns = r + (d ? d : 1);
                c->last_activity_ns = r;
            }
            continue;
        }
        /* refill finished slots while sessions remain */
        for (int i = 0; i < concurrency && started < total; i++)
            if (conns[i].st == FREE) start_session(&conns[i]);
        if (open_now == 0 && started >= total) break;
        t = now_ns();
        int timeout_ms = next > t ? (int)((next - t + 999999) / 1000000) : 0;
        int n = epoll_wait(epfd, evs, concurrency, timeout_ms);
        for (int k = 0; k < n; k++) {
            struct conn *c = evs[k].data.ptr;
            if (c->fd < 0) continue;
            if (c->st == CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) { connect_errors++; finish(c, 1); continue; }
                struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
                epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
                c->st = WAIT_CMD;
                c->last_activity_ns = now_ns();
                send_env(c);
                if (c->fd < 0) continue;
            }
            if (evs[k].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c);
        }
    }
    uint64_t t1 = now_ns();
    for (int i = 0; i < concurrency; i++)
        if (conns[i].st != FREE) finish(&conns[i], 2);
    qsort(all_s.v, all_s.n, sizeof *all_s.v, cmp_u64);
    qsort(release_s.v, release_s.n, sizeof *release_s.v, cmp_u64);
    qsort(steady_s.v, steady_s.n, sizeof *steady_s.v, cmp_u64);
    samples = all_s.v;
    nsamples = all_s.n;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    double elapsed = (double)(t1 - t0) / 1e9;
    printf("{\"sessions\": %d, \"ok\": %d, \"failed\": %d, \"timed_out\": %d, "
           "\"connect_errors\": %d, \"not_started\": %d, \"elapsed_s\": %.4f, "
           "\"turnarounds\": %zu, \"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, "
           "\"max_us\": %.1f, \"first_command_mean_us\": %.1f, \"generator_cpu_s\": %.4f, "
           "\"release_turnarounds\": %zu, \"release_p50_us\": %.1f, \"release_p99_us\": %.1f, "
           "\"steady_turnarounds\": %zu, \"steady_p50_us\": %.1f, \"steady_p99_us\": %.1f, "
           "\"generator_run_queue_wait_s\": %.4f, \"generator_involuntary_switches\": %ld}\n",
           total, ok, failed, timed_out, connect_errors, total - started, elapsed, nsamples,
           pct(0.50), pct(0.90), pct(0.99), nsamples ? (double)samples[nsamples - 1] / 1000.0 : 0.0,
           first_cmd_n ? (double)first_cmd_sum_ns / (double)first_cmd_n / 1000.0 : 0.0, cpu,
           release_s.n, spct(&release_s, 0.50), spct(&release_s, 0.99),
           steady_s.n, spct(&steady_s, 0.50), spct(&steady_s, 0.99),
           run_queue_wait_s(), ru.ru_nivcsw);
    return 0;
}
