/* redis_server.h -- a private redis-server for the unit tests that need one.
 *
 * Lua scripts (the fold, the erase) are tested where they run: in a real
 * Redis, started here on a free port in a temporary directory, with no
 * persistence, and killed at the end. Header-only: include it in one test.
 *
 *   struct redis_server rs;
 *   if (redis_server_start(&rs) < 0) fail;   rs.rc is a connected context
 *   ...
 *   redis_server_stop(&rs);
 *
 * redis_server_cmd() runs one command and fails the test on an error reply;
 * include cmocka.h before this header.
 */
#ifndef FAIRSTAT_TEST_REDIS_SERVER_H
#define FAIRSTAT_TEST_REDIS_SERVER_H

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct redis_server {
    pid_t pid;
    int port;
    char dir[64];
    redisContext *rc;
};

/* A port nobody listens on now (the kernel's pick for port 0). */
static inline int redis_server_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

static inline void redis_server_stop(struct redis_server *s)
{
    if (s->rc) redisFree(s->rc);
    s->rc = NULL;
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = 0;
    if (s->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
        if (system(cmd) != 0) fprintf(stderr, "redis_server: could not remove %s\n", s->dir);
    }
    s->dir[0] = '\0';
}

/* Starts redis-server and connects s->rc once it answers PING (within 10 s).
 * 0, or -1 with a line on stderr. */
static inline int redis_server_start(struct redis_server *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/fairstat-unit-XXXXXX");
    if (!mkdtemp(s->dir) || (s->port = redis_server_free_port()) < 0) {
        perror("redis_server");
        s->dir[0] = '\0';
        return -1;
    }
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    s->pid = fork();
    if (s->pid < 0) return -1;
    if (s->pid == 0) {
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--dir",
               s->dir, "--save", "", "--appendonly", "no", "--logfile", "redis.log", (char *)NULL);
        perror("redis-server (run make deps)");
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) {
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            fprintf(stderr, "redis_server: redis-server exited\n");
            redis_server_stop(s);
            return -1;
        }
        redisContext *rc = redisConnect("127.0.0.1", s->port);
        if (rc && !rc->err) {
            redisReply *r = redisCommand(rc, "PING");
            int ok = r && r->type == REDIS_REPLY_STATUS;
            if (r) freeReplyObject(r);
            if (ok) {
                s->rc = rc;
                return 0;
            }
        }
        if (rc) redisFree(rc);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "redis_server: no answer on port %d\n", s->port);
    redis_server_stop(s);
    return -1;
}

/* The reply (caller frees) of a command that must not fail. */
static inline redisReply *redis_server_cmd(struct redis_server *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(s->rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR) fail_msg("%s", r->str);
    return r;
}

#endif
