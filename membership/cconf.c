/* corosync.conf and the authkey for a pool (cconf.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cconf.h"
#include "ha/bytes.h"

/* ---------------------------------------------------------------- checks */

/* A name as it may appear in an error message: at most 63 bytes, anything
 * but printable ASCII shown as '?'. */
static const char *shown(const char *s, size_t field, char buf[HA_NAME_MAX])
{
    size_t i = 0;
    for (; i < field && i < HA_NAME_MAX - 1 && s[i]; i++)
        buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    buf[i] = 0;
    return buf;
}

static bool terminated(const char *s, size_t field) { return memchr(s, 0, field) != NULL; }

struct node_addr {
    int family;
    unsigned char bytes[16];
};

static int check_pool(const struct ha_db *db, char *err, size_t errlen)
{
    char b[HA_NAME_MAX];
    if (!db->pool_name[0])
        return errf(err, errlen, -EINVAL, "the pool has no name yet (no pool create): corosync needs a cluster_name");
    if (!terminated(db->pool_name, sizeof db->pool_name) || !ha_name_valid(db->pool_name))
        return errf(err, errlen, -EINVAL,
                    "pool name \"%s\" cannot be corosync's cluster_name: corosync takes the rest of the line, "
                    "trims blanks at both ends and reads a '{' as the start of a section; vigil allows "
                    "[A-Za-z0-9._-], 1..63 characters",
                    shown(db->pool_name, sizeof db->pool_name, b));
    if (db->set.token_timeout < CCONF_TOKEN_MIN_MS || db->set.token_timeout > CCONF_TOKEN_MAX_MS)
        return errf(err, errlen, -EINVAL,
                    "token_timeout %" PRId64 " ms is outside what corosync takes as totem.token "
                    "(%d..%d ms: below, its token retransmit timeout, token / 4.2, is under 30 ms)",
                    (int64_t)db->set.token_timeout, CCONF_TOKEN_MIN_MS, CCONF_TOKEN_MAX_MS);
    return 0;
}

static int check_host(const struct ha_db *db, int i, struct node_addr *a, char *err, size_t errlen)
{
    const struct ha_db_host *h = &db->host[i];
    char b[HA_NAME_MAX];
    if (!terminated(h->name, sizeof h->name) || !ha_name_valid(h->name))
        return errf(err, errlen, -EINVAL,
                    "host %d: name \"%s\" cannot be a corosync node name: vigil allows [A-Za-z0-9._-], "
                    "1..63 characters",
                    i, shown(h->name, sizeof h->name, b));
    if (!terminated(h->addr, sizeof h->addr) || !h->addr[0])
        return errf(err, errlen, -EINVAL, "host %s has no corosync address", h->name);
    if (inet_pton(AF_INET, h->addr, a->bytes) == 1)
        a->family = AF_INET;
    else if (inet_pton(AF_INET6, h->addr, a->bytes) == 1)
        a->family = AF_INET6;
    else
        return errf(err, errlen, -EINVAL,
                    "host %s: address \"%s\" is not an IPv4 or IPv6 literal (no brackets, no %%zone)", h->name,
                    shown(h->addr, sizeof h->addr, b));
    if (h->nodeid == 0 || h->nodeid > CCONF_NODEID_MAX)
        return errf(err, errlen, -EINVAL, "host %s: nodeid %" PRIu32 " is outside 1..%u (knet's node ids are 16 bits)",
                    h->name, h->nodeid, CCONF_NODEID_MAX);
    return 0;
}

/* Every joined host on its own, then the pairs: corosync refuses a nodeid
 * twice and a link mixing IPv4 and IPv6; knet cannot tell two nodes on one
 * address apart.  Returns the number of joined hosts or -EINVAL. */
static int check_nodes(const struct ha_db *db, char *err, size_t errlen)
{
    struct node_addr addr[HA_MAX_HOSTS];
    int idx[HA_MAX_HOSTS], n = 0;
    int nhosts = db->nhosts < 0 ? 0 : db->nhosts > HA_MAX_HOSTS ? HA_MAX_HOSTS : db->nhosts;
    for (int i = 0; i < nhosts; i++) {
        if (!db->host[i].joined)
            continue;
        int rc = check_host(db, i, &addr[n], err, errlen);
        if (rc < 0)
            return rc;
        idx[n++] = i;
    }
    if (!n)
        return errf(err, errlen, -EINVAL, "the pool has no joined host: corosync needs at least one node");
    for (int j = 1; j < n; j++) {
        const struct ha_db_host *b = &db->host[idx[j]];
        for (int k = 0; k < j; k++) {
            const struct ha_db_host *a = &db->host[idx[k]];
            if (a->nodeid == b->nodeid)
                return errf(err, errlen, -EINVAL, "hosts %s and %s share nodeid %" PRIu32, a->name, b->name,
                            a->nodeid);
            if (addr[k].family != addr[j].family)
                return errf(err, errlen, -EINVAL,
                            "hosts %s (%s) and %s (%s) mix IPv4 and IPv6: corosync wants one family per link",
                            a->name, a->addr, b->name, b->addr);
            if (!memcmp(addr[k].bytes, addr[j].bytes, addr[k].family == AF_INET ? 4 : 16))
                return errf(err, errlen, -EINVAL, "hosts %s and %s share the address %s", a->name, b->name,
                            b->addr);
            if (!strcmp(a->name, b->name))
                return errf(err, errlen, -EINVAL, "two joined hosts are named %s", a->name);
        }
    }
    return n;
}

/* ---------------------------------------------------------------- render */

struct text {
    char *p;
    size_t cap, n; /* n counts what was asked for, even past cap */
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(t->n < t->cap ? t->p + t->n : NULL, t->n < t->cap ? t->cap - t->n : 0, fmt, ap);
    va_end(ap);
    if (k > 0)
        t->n += (size_t)k;
}

int cconf_render(const struct ha_db *db, char *out, size_t cap, char *err, size_t errlen)
{
    int rc = check_pool(db, err, errlen);
    if (rc < 0 || (rc = check_nodes(db, err, errlen)) < 0)
        return rc;
    struct text t = {out, cap, 0};
    put(&t, "# corosync.conf for the vigil pool %s.\n", db->pool_name);
    put(&t, "# Written by vigild from the pool database: edits here are overwritten.\n");
    put(&t, "# Change the pool with the vigil command instead (vigil(1)).\n\n");
    put(&t, "totem {\n");
    put(&t, "    version: 2\n");
    put(&t, "    cluster_name: %s\n", db->pool_name);
    put(&t, "    transport: knet\n");
    put(&t, "    crypto_cipher: aes256\n");
    put(&t, "    crypto_hash: sha256\n");
    put(&t, "    token: %" PRId64 "\n", (int64_t)db->set.token_timeout);
    put(&t, "    token_coefficient: 0\n");
    put(&t, "}\n\nnodelist {\n");
    for (int i = 0; i < db->nhosts && i < HA_MAX_HOSTS; i++) {
        const struct ha_db_host *h = &db->host[i];
        if (!h->joined)
            continue;
        put(&t, "    node {\n");
        put(&t, "        ring0_addr: %s\n", h->addr);
        put(&t, "        nodeid: %" PRIu32 "\n", h->nodeid);
        put(&t, "        name: %s\n", h->name);
        put(&t, "    }\n");
    }
    put(&t, "}\n\nquorum {\n");
    put(&t, "    provider: corosync_votequorum\n");
    put(&t, "}\n\nlogging {\n");
    put(&t, "    to_logfile: yes\n");
    put(&t, "    logfile: /var/log/corosync/corosync.log\n");
    put(&t, "    to_stderr: no\n");
    put(&t, "    to_syslog: no\n");
    put(&t, "    timestamp: on\n");
    put(&t, "}\n");
    if (t.n >= cap || t.n > INT_MAX)
        return errf(err, errlen, -ENOSPC, "corosync.conf needs %zu bytes, the buffer holds %zu", t.n + 1, cap);
    return (int)t.n;
}

/* ---------------------------------------------------------------- files */

/* Whether path is a regular file holding exactly data with these
 * permission bits.  Any doubt (unreadable, a link, ...) is a no. */
static bool holds(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    bool same = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == mode &&
                (uint64_t)st.st_size == (uint64_t)len;
    char buf[4096];
    for (size_t off = 0; same && off < len;) {
        size_t want = len - off < sizeof buf ? len - off : sizeof buf;
        ssize_t k = pread(fd, buf, want, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0 || memcmp(buf, (const char *)data + off, (size_t)k))
            same = false;
        else
            off += (size_t)k;
    }
    close(fd);
    return same;
}

static int sync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = 0; /* "/x": the root */
    else
        *slash = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int cconf_write_file(const char *path, const void *data, size_t len, mode_t mode, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    mode &= 07777;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return errf(err, errlen, -ENAMETOOLONG, "%s: the path is too long", path);
    if (holds(path, data, len, mode))
        return 0;
    if (unlink(tmp) < 0 && errno != ENOENT)
        return errf(err, errlen, -errno, "%s: unlink of a leftover failed: %s", tmp, strerror(errno));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return errf(err, errlen, -errno, "%s: open failed: %s", tmp, strerror(errno));
    const char *step = "fchmod";
    int rc = fchmod(fd, mode) < 0 ? -errno : 0; /* the umask does not decide */
    for (size_t off = 0; !rc && off < len;) {
        ssize_t k = write(fd, (const char *)data + off, len - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            rc = -errno, step = "write";
        else
            off += (size_t)k;
    }
    if (!rc && fsync(fd) < 0)
        rc = -errno, step = "fsync";
    if (close(fd) < 0 && !rc)
        rc = -errno, step = "close";
    if (!rc && rename(tmp, path) < 0)
        rc = -errno, step = "rename";
    if (rc) {
        int u = unlink(tmp) < 0 ? errno : 0;
        bool ren = !strcmp(step, "rename");
        return errf(err, errlen, rc, "%s: %s%s%s failed: %s%s%s", tmp, step, ren ? " over " : "", ren ? path : "",
                    strerror(-rc), u ? "; and it could not be removed: " : "", u ? strerror(u) : "");
    }
    if ((rc = sync_dir_of(path)) < 0)
        return errf(err, errlen, rc, "%s: fsync of its directory failed: %s", path, strerror(-rc));
    return 1;
}

int cconf_authkey_create(const char *path, char *err, size_t errlen)
{
    unsigned char key[CCONF_AUTHKEY_LEN];
    for (size_t n = 0; n < sizeof key;) {
        ssize_t k = getrandom(key + n, sizeof key - n, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return errf(err, errlen, -errno, "%s: getrandom failed: %s", path, strerror(errno));
        n += (size_t)k;
    }
    int rc = cconf_write_file(path, key, sizeof key, 0400, err, errlen);
    explicit_bzero(key, sizeof key);
    return rc < 0 ? rc : 0;
}
