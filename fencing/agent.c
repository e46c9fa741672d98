/* fencing/agent.c: any fence-agents program (fence_ipmilan, fence_ilo4,
 * fence_redfish, PDU agents...), run with the key=value stdin protocol.
 * The agent runs in its own process group, which is killed when the time is
 * up; its output gives the reason of a failure, with the password scrubbed. */
#define _GNU_SOURCE
#include "fencing/fence_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* agents that are fence_ipmilan under another name take lanplus and cipher */
static int ipmilan_family(const char *agent)
{
    static const char *const names[] = { "fence_ipmilan", "fence_ipmilanplus", "fence_ilo3", "fence_ilo4",
                                         "fence_ilo5",    "fence_idrac",       "fence_imm" };
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!strcmp(agent, names[i]))
            return 1;
    }
    return 0;
}

static int has_option(const struct fence_device *d, const char *key)
{
    size_t kl = strlen(key);
    int i;
    for (i = 0; i < d->noptions; i++) {
        if (!strncmp(d->options[i], key, kl) && d->options[i][kl] == '=')
            return 1;
    }
    return 0;
}

int fence_agent_stdin(const struct fence_device *d, enum fence_action a, char *buf, size_t len)
{
    static const char *const act[] = { [FENCE_STATUS] = "status", [FENCE_ON] = "on", [FENCE_OFF] = "off",
                                       [FENCE_CYCLE] = "reboot" };
    size_t n = 0;
    int i, w;
#define ADD(...)                                                                                                       \
    do {                                                                                                               \
        w = snprintf(buf + n, len - n, __VA_ARGS__);                                                                   \
        if (w < 0 || (size_t)w >= len - n)                                                                             \
            return -ENOSPC;                                                                                            \
        n += (size_t)w;                                                                                                \
    } while (0)
    if (!len)
        return -ENOSPC;
    buf[0] = '\0';
    ADD("action=%s\n", act[a]);
    if (d->address[0] && !has_option(d, "ip"))
        ADD("ip=%s\n", d->address);
    if (d->port && !has_option(d, "ipport"))
        ADD("ipport=%d\n", d->port);
    if (d->user[0] && !has_option(d, "username"))
        ADD("username=%s\n", d->user);
    if (d->password[0] && !has_option(d, "password"))
        ADD("password=%s\n", d->password);
    if (ipmilan_family(d->agent)) {
        if (!has_option(d, "lanplus"))
            ADD("lanplus=1\n");
        if (!has_option(d, "cipher"))
            ADD("cipher=%d\n", d->cipher ? d->cipher : 3);
    }
    if (!has_option(d, "power_wait"))
        ADD("power_wait=0\n");
    for (i = 0; i < d->noptions; i++)
        ADD("%s\n", d->options[i]);
#undef ADD
    return (int)n;
}

int fence_agent_map_exit(enum fence_action a, int exit_code, enum fence_power *st)
{
    *st = FENCE_POWER_UNKNOWN;
    if (a == FENCE_STATUS) {
        if (exit_code == 0)
            *st = FENCE_POWER_ON;
        else if (exit_code == 2)
            *st = FENCE_POWER_OFF;
        return exit_code == 0 || exit_code == 2 ? 0 : -EIO;
    }
    if (exit_code != 0)
        return -EIO;
    if (a == FENCE_OFF)
        *st = FENCE_POWER_OFF;
    else
        *st = FENCE_POWER_ON;
    return 0;
}

static int is_noise(const char *line, size_t n)
{
    /* Python's warnings and the source lines they quote */
    return memmem(line, n, "Warning:", 8) || (n > 2 && line[0] == ' ' && line[1] == ' ');
}

void fence_agent_reason(const char *output, char *out, size_t len)
{
    const char *p = output, *e, *best = NULL, *last = NULL;
    size_t bestn = 0, lastn = 0, n;
    if (!len)
        return;
    out[0] = '\0';
    while (*p) {
        e = strchr(p, '\n');
        n = e ? (size_t)(e - p) : strlen(p);
        while (n && (p[n - 1] == '\r' || p[n - 1] == ' '))
            n--;
        if (n && !is_noise(p, n)) {
            if (memmem(p, n, "ERROR", 5) || memmem(p, n, "Failed", 6) || memmem(p, n, "failed", 6)) {
                best = p;
                bestn = n;
            }
            last = p;
            lastn = n;
        }
        if (!e)
            break;
        p = e + 1;
    }
    if (!best) {
        best = last;
        bestn = lastn;
    }
    if (best) {
        /* drops a leading "2026-11-22 02:06:01,445 " time stamp */
        if (bestn > 24 && best[4] == '-' && best[7] == '-' && best[13] == ':' && best[23] == ' ') {
            best += 24;
            bestn -= 24;
        }
        snprintf(out, len, "%.*s", (int)bestn, best);
    }
}

int fence_agent_run(const struct fence_device *d, enum fence_action a, int timeout_ms,
                    enum fence_power *st, char *why, size_t whylen)
{
    char input[4096], output[8192], reason[512];
    int in[2], outp[2], status, rc, n, exit_code;
    size_t got = 0, sent = 0, inlen;
    long deadline = fence_now_ms() + timeout_ms;
    pid_t pid;
    struct pollfd pf[2];

    n = fence_agent_stdin(d, a, input, sizeof input);
    if (n < 0) {
        fence_setf(why, whylen, "agent %s: too many options for its input", d->agent);
        return -EINVAL;
    }
    inlen = (size_t)n;
    if (pipe2(in, O_CLOEXEC) < 0)
        return fence_setf(why, whylen, "pipe: %s", strerror(errno)), -errno;
    if (pipe2(outp, O_CLOEXEC) < 0) {
        rc = -errno;
        close(in[0]);
        close(in[1]);
        fence_setf(why, whylen, "pipe: %s", strerror(-rc));
        return rc;
    }
    pid = fork();
    if (pid < 0) {
        rc = -errno;
        close(in[0]); close(in[1]); close(outp[0]); close(outp[1]);
        fence_setf(why, whylen, "fork: %s", strerror(-rc));
        return rc;
    }
    if (pid == 0) {
        char *argv[2];
        setpgid(0, 0);
        dup2(in[0], 0);
        dup2(outp[1], 1);
        dup2(outp[1], 2);
        /* fence-agents live in /usr/sbin; vigild may run with a short PATH */
        setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin", 0);
        {
            const char *path = getenv("PATH");
            char full[4096];
            snprintf(full, sizeof full, "%s:/usr/sbin:/sbin", path);
            setenv("PATH", full, 1);
        }
        argv[0] = (char *)d->agent;
        argv[1] = NULL;
        execvp(d->agent, argv);
        fprintf(stderr, "ERROR: cannot run %s: %s\n", d->agent, strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* both sides, so the group exists before any kill */
    close(in[0]);
    close(outp[1]);
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    pf[0].fd = outp[0];
    pf[0].events = POLLIN;
    pf[1].fd = in[1];
    pf[1].events = POLLOUT;
    rc = 0;
    for (;;) {
        long left = deadline - fence_now_ms();
        int pr;
        if (left <= 0) {
            rc = -ETIMEDOUT;
            break;
        }
        pr = poll(pf, pf[1].fd >= 0 ? 2 : 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0) {
            rc = -errno;
            break;
        }
        if (pf[1].fd >= 0 && (pf[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(in[1], input + sent, inlen - sent);
            if (w > 0)
                sent += (size_t)w;
            if (w < 0 && errno != EAGAIN) /* the agent does not read: let it say why */
                sent = inlen;
            if (sent == inlen) {
                close(in[1]);
                pf[1].fd = -1;
            }
        }
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            char tmp[1024];
            ssize_t r = read(outp[0], tmp, sizeof tmp);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break; /* every writer is gone: the agent has ended */
            if (got + 1 < sizeof output) {
                size_t k = (size_t)r < sizeof output - 1 - got ? (size_t)r : sizeof output - 1 - got;
                memcpy(output + got, tmp, k);
                got += k;
            } else { /* keeps the end, where the reason is */
                memmove(output, output + sizeof output / 2, sizeof output / 2);
                got -= sizeof output / 2;
            }
        }
    }
    output[got] = '\0';
    memset(input, 0, sizeof input);
    if (pf[1].fd >= 0)
        close(in[1]);
    close(outp[0]);
    if (rc == -ETIMEDOUT) {
        kill(-pid, SIGKILL);
        waitpid(pid, &status, 0);
        fence_scrub(output, sizeof output, d->password);
        fence_agent_reason(output, reason, sizeof reason);
        fence_setf(why, whylen, "agent %s (%s) did not finish within %g s%s%s", d->agent, d->address,
                   timeout_ms / 1000.0, reason[0] ? ": " : "", reason);
        return -ETIMEDOUT;
    }
    /* the output closed: the agent ends now (bounded by the same deadline) */
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (fence_now_ms() >= deadline) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            fence_setf(why, whylen, "agent %s (%s) did not finish within %g s", d->agent, d->address,
                       timeout_ms / 1000.0);
            return -ETIMEDOUT;
        }
        fence_sleep_ms(5);
    }
    kill(-pid, SIGKILL); /* anything it left behind in its group */
    fence_scrub(output, sizeof output, d->password);
    fence_agent_reason(output, reason, sizeof reason);
    if (!WIFEXITED(status)) {
        fence_setf(why, whylen, "agent %s (%s) was killed by signal %d", d->agent, d->address, WTERMSIG(status));
        return -EIO;
    }
    exit_code = WEXITSTATUS(status);
    if (exit_code == 127) {
        fence_setf(why, whylen, "agent %s is not installed (fence-agents)", d->agent);
        return -ENOENT;
    }
    rc = fence_agent_map_exit(a, exit_code, st);
    if (rc)
        fence_setf(why, whylen, "agent %s (%s) failed (exit %d)%s%s", d->agent, d->address, exit_code,
                   reason[0] ? ": " : "", reason);
    else
        fence_setf(why, whylen, "agent %s (%s): %s", d->agent, d->address,
                   a == FENCE_STATUS ? fence_power_name(*st) : a == FENCE_OFF ? "off" : "done");
    return rc;
}
