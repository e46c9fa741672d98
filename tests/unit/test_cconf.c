/* corosync.conf rendering, crash-safe file replacement and the authkey
 * (membership/cconf.c), and corosync's own verdict on what is rendered:
 * `corosync -t` when corosync is installed and namespaces are available. */
#include <check.h>

#include "check_main.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "membership/cconf.h"
#include "tests/scratch.h"

/* ---------------------------------------------------------------- pools */

static void add_host(struct ha_db *db, const char *name, const char *addr, uint32_t nodeid, bool joined)
{
    struct ha_db_host h;
    memset(&h, 0, sizeof h);
    snprintf(h.name, sizeof h.name, "%s", name);
    snprintf(h.addr, sizeof h.addr, "%s", addr);
    h.nodeid = nodeid;
    h.joined = joined;
    h.mem_mb = 65536;
    h.cpus = 16;
    ck_assert_int_ge(ha_db_add_host(db, &h), 0);
}

/* prod: h1..h3 joined, token 3000 ms */
static void pool3(struct ha_db *db)
{
    char err[256];
    ha_db_init(db);
    snprintf(db->pool_name, sizeof db->pool_name, "prod");
    snprintf(db->pool_uuid, sizeof db->pool_uuid, "8d7c4a52-0d4e-4b5e-9a41-4f1c8f0d2b11");
    ck_assert_int_eq(ha_settings_set(&db->set, "token_timeout", "3s", err, sizeof err), 0);
    add_host(db, "h1", "10.0.0.1", 1, true);
    add_host(db, "h2", "10.0.0.2", 2, true);
    add_host(db, "h3", "10.0.0.3", 3, true);
}

static const char expect3[] = "# corosync.conf for the vigil pool prod.\n"
                              "# Written by vigild from the pool database: edits here are overwritten.\n"
                              "# Change the pool with the vigil command instead (vigil(1)).\n"
                              "\n"
                              "totem {\n"
                              "    version: 2\n"
                              "    cluster_name: prod\n"
                              "    transport: knet\n"
                              "    crypto_cipher: aes256\n"
                              "    crypto_hash: sha256\n"
                              "    token: 3000\n"
                              "    token_coefficient: 0\n"
                              "}\n"
                              "\n"
                              "nodelist {\n"
                              "    node {\n"
                              "        ring0_addr: 10.0.0.1\n"
                              "        nodeid: 1\n"
                              "        name: h1\n"
                              "    }\n"
                              "    node {\n"
                              "        ring0_addr: 10.0.0.2\n"
                              "        nodeid: 2\n"
                              "        name: h2\n"
                              "    }\n"
                              "    node {\n"
                              "        ring0_addr: 10.0.0.3\n"
                              "        nodeid: 3\n"
                              "        name: h3\n"
                              "    }\n"
                              "}\n"
                              "\n"
                              "quorum {\n"
                              "    provider: corosync_votequorum\n"
                              "}\n"
                              "\n"
                              "logging {\n"
                              "    to_logfile: yes\n"
                              "    logfile: /var/log/corosync/corosync.log\n"
                              "    to_stderr: no\n"
                              "    to_syslog: no\n"
                              "    timestamp: on\n"
                              "}\n";

/* The largest pool: 64 hosts, every name 63 characters, the longest
 * address text (45 characters), five-digit node ids, a 63-character pool
 * name and a nine-digit token. */
static void pool_max(struct ha_db *db)
{
    ha_db_init(db);
    memset(db->pool_name, 'p', HA_NAME_MAX - 1);
    db->set.token_timeout = CCONF_TOKEN_MAX_MS;
    for (int i = 0; i < HA_MAX_HOSTS; i++) {
        char name[HA_NAME_MAX], addr[64];
        snprintf(name, sizeof name, "%02d", i);
        memset(name + 2, 'h', HA_NAME_MAX - 3);
        name[HA_NAME_MAX - 1] = 0;
        snprintf(addr, sizeof addr, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.%d", 100 + i);
        add_host(db, name, addr, CCONF_NODEID_MAX - (uint32_t)i, true);
    }
}

static char out[CCONF_RENDER_MAX];

START_TEST(render_three_hosts)
{
    struct ha_db db;
    char err[256] = "";
    pool3(&db);
    int n = cconf_render(&db, out, sizeof out, err, sizeof err);
    ck_assert_msg(n > 0, "%s", err);
    ck_assert_int_eq(n, (int)strlen(out));
    ck_assert_str_eq(out, expect3);
    ha_db_free(&db);
}
END_TEST

START_TEST(render_only_joined_hosts)
{
    struct ha_db db;
    char err[256] = "";
    /* h0 left, h4 not joined yet, in between the joined ones */
    ha_db_init(&db);
    snprintf(db.pool_name, sizeof db.pool_name, "prod");
    ck_assert_int_eq(ha_settings_set(&db.set, "token_timeout", "3000ms", err, sizeof err), 0);
    add_host(&db, "h0", "10.0.0.9", 9, false);
    add_host(&db, "h1", "10.0.0.1", 1, true);
    add_host(&db, "h4", "", 0, false); /* not joined: no address needed */
    add_host(&db, "h2", "10.0.0.2", 2, true);
    add_host(&db, "h3", "10.0.0.3", 3, true);
    ck_assert_msg(cconf_render(&db, out, sizeof out, err, sizeof err) > 0, "%s", err);
    ck_assert_str_eq(out, expect3);
    ck_assert_ptr_null(strstr(out, "h0"));
    ck_assert_ptr_null(strstr(out, "h4"));
    ck_assert_ptr_null(strstr(out, "10.0.0.9"));
    /* the order is the host index order, not the nodeid order */
    db.host[1].nodeid = 7;
    ck_assert_msg(cconf_render(&db, out, sizeof out, err, sizeof err) > 0, "%s", err);
    ck_assert_ptr_nonnull(strstr(out, "nodeid: 7"));
    ck_assert(strstr(out, "nodeid: 7") < strstr(out, "nodeid: 2"));
    ha_db_free(&db);
}
END_TEST

START_TEST(render_ipv6)
{
    struct ha_db db;
    char err[256] = "";
    pool3(&db);
    snprintf(db.host[0].addr, sizeof db.host[0].addr, "fd00:99::1");
    snprintf(db.host[1].addr, sizeof db.host[1].addr, "fd00:99::2");
    snprintf(db.host[2].addr, sizeof db.host[2].addr, "2001:db8::10.0.0.3");
    ck_assert_msg(cconf_render(&db, out, sizeof out, err, sizeof err) > 0, "%s", err);
    ck_assert_ptr_nonnull(strstr(out, "        ring0_addr: fd00:99::1\n        nodeid: 1\n"));
    ck_assert_ptr_nonnull(strstr(out, "        ring0_addr: 2001:db8::10.0.0.3\n        nodeid: 3\n"));
    ha_db_free(&db);
}
END_TEST

/* Expects -EINVAL with `want` in the message, and nothing written. */
static void refused(const struct ha_db *db, const char *want)
{
    char err[512] = "";
    memset(out, 'x', 16);
    int rc = cconf_render(db, out, sizeof out, err, sizeof err);
    ck_assert_msg(rc == -EINVAL, "rendered (%d) where \"%s\" was expected", rc, want);
    ck_assert_msg(strstr(err, want), "error \"%s\" does not say \"%s\"", err, want);
    ck_assert_int_eq(out[0], 'x');
}

START_TEST(render_errors)
{
    struct ha_db db;
    /* no host at all; hosts but none joined */
    ha_db_init(&db);
    snprintf(db.pool_name, sizeof db.pool_name, "prod");
    refused(&db, "no joined host");
    add_host(&db, "h1", "10.0.0.1", 1, false);
    refused(&db, "no joined host");
    ha_db_free(&db);

    pool3(&db);
    db.pool_name[0] = 0;
    refused(&db, "the pool has no name yet");
    /* names corosync would misread, or that vigil never makes */
    const char *bad[] = {"a{b", "prod pool", " prod", "prod\n", "pröd", "a:b}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(db.pool_name, sizeof db.pool_name, "%s", bad[i]);
        refused(&db, "cannot be corosync's cluster_name: corosync takes the rest of the line");
    }
    refused(&db, "[A-Za-z0-9._-], 1..63 characters");
    memset(db.pool_name, 'p', sizeof db.pool_name); /* no NUL */
    refused(&db, "cannot be corosync's cluster_name");
    snprintf(db.pool_name, sizeof db.pool_name, "prod");

    db.set.token_timeout = CCONF_TOKEN_MIN_MS - 1;
    refused(&db, "token_timeout 125 ms is outside what corosync takes as totem.token (126..1000000000 ms: "
                 "below, its token retransmit timeout, token / 4.2, is under 30 ms)");
    db.set.token_timeout = 100; /* vigil's own minimum, still too short for corosync */
    refused(&db, "token_timeout 100 ms is outside");
    db.set.token_timeout = (ha_ms)CCONF_TOKEN_MAX_MS + 1;
    refused(&db, "is outside what corosync takes");
    db.set.token_timeout = 3000;

    db.host[1].addr[0] = 0;
    refused(&db, "host h2 has no corosync address");
    const char *addrs[] = {"h2.example.com", "[fd00::2]", "fe80::2%eth0", "10.0.0.256", "10.0.2", " 10.0.0.2",
                           "010.0.0.2"};
    for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
        snprintf(db.host[1].addr, sizeof db.host[1].addr, "%s", addrs[i]);
        refused(&db, "is not an IPv4 or IPv6 literal");
    }
    snprintf(db.host[1].addr, sizeof db.host[1].addr, "10.0.0.2");

    db.host[2].nodeid = 0;
    refused(&db, "host h3: nodeid 0 is outside 1..65535");
    db.host[2].nodeid = 65536;
    refused(&db, "host h3: nodeid 65536 is outside 1..65535 (knet's node ids are 16 bits)");
    db.host[2].nodeid = 1;
    refused(&db, "hosts h1 and h3 share nodeid 1");
    db.host[2].nodeid = 3;

    snprintf(db.host[2].addr, sizeof db.host[2].addr, "10.0.0.1");
    refused(&db, "hosts h1 and h3 share the address 10.0.0.1");
    snprintf(db.host[0].addr, sizeof db.host[0].addr, "fd00::1");
    snprintf(db.host[2].addr, sizeof db.host[2].addr, "fd00:0::0:1"); /* the same address, spelt otherwise */
    refused(&db, "mix IPv4 and IPv6");
    snprintf(db.host[1].addr, sizeof db.host[1].addr, "fd00::2");
    refused(&db, "hosts h1 and h3 share the address fd00:0::0:1");
    snprintf(db.host[2].addr, sizeof db.host[2].addr, "fd00::3");

    snprintf(db.host[0].name, sizeof db.host[0].name, "h 1");
    refused(&db, "host 0: name \"h 1\" cannot be a corosync node name");
    ha_db_free(&db);
}
END_TEST

START_TEST(render_buffer_sizes)
{
    struct ha_db db;
    char err[256] = "", small[sizeof expect3];
    pool3(&db);
    int n = (int)strlen(expect3);
    ck_assert_int_eq(cconf_render(&db, small, (size_t)n, err, sizeof err), -ENOSPC); /* no room for the NUL */
    char want[64];
    snprintf(want, sizeof want, "corosync.conf needs %d bytes, the buffer holds %d", n + 1, n);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(cconf_render(&db, small, 10, err, sizeof err), -ENOSPC);
    ck_assert_int_eq(cconf_render(&db, NULL, 0, err, sizeof err), -ENOSPC);
    ck_assert_int_eq(cconf_render(&db, small, sizeof small, err, sizeof err), n);
    ck_assert_str_eq(small, expect3);
    ha_db_free(&db);

    /* the worst case fits CCONF_RENDER_MAX */
    pool_max(&db);
    n = cconf_render(&db, out, sizeof out, err, sizeof err);
    ck_assert_msg(n > 0, "%s", err);
    ck_assert_int_lt(n, CCONF_RENDER_MAX);
    ck_assert_int_eq(n, (int)strlen(out));
    ha_db_free(&db);
}
END_TEST

START_TEST(render_deterministic)
{
    struct ha_db db, copy;
    char err[256], first[CCONF_RENDER_MAX];
    pool3(&db);
    int n = cconf_render(&db, first, sizeof first, err, sizeof err);
    ck_assert_int_gt(n, 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(cconf_render(&db, out, sizeof out, err, sizeof err), n);
        ck_assert(!memcmp(out, first, (size_t)n + 1));
    }
    ck_assert_int_eq(ha_db_copy(&copy, &db), 0);
    ck_assert_int_eq(cconf_render(&copy, out, sizeof out, err, sizeof err), n);
    ck_assert(!memcmp(out, first, (size_t)n + 1));
    /* what corosync does not see leaves the text alone */
    copy.version += 17;
    copy.host[1].maintenance = true;
    copy.host[2].mem_mb = 1;
    snprintf(copy.pool_uuid, sizeof copy.pool_uuid, "another");
    ck_assert_int_eq(ha_db_add_vm(&copy, &(struct ha_db_vm){.name = "vm1", .mem_mb = 512, .cpus = 1}), 0);
    ck_assert_int_eq(cconf_render(&copy, out, sizeof out, err, sizeof err), n);
    ck_assert(!memcmp(out, first, (size_t)n + 1));
    /* and what it sees changes it */
    copy.set.token_timeout = 5000;
    ck_assert_int_eq(cconf_render(&copy, out, sizeof out, err, sizeof err), n);
    ck_assert(memcmp(out, first, (size_t)n));
    ha_db_free(&copy);
    ha_db_free(&db);
}
END_TEST

/* ---------------------------------------------------------------- files */

static void setup(void) { scratch_make("test_cconf"); }
static void teardown(void) { scratch_remove(); }

static mode_t mode_of(const char *path)
{
    struct stat st;
    ck_assert_int_eq(lstat(path, &st), 0);
    return st.st_mode & 07777;
}

static int entries(const char *dir)
{
    char cmd[160], line[64];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, p));
    pclose(p);
    return atoi(line);
}

START_TEST(write_file_replaces_once)
{
    char path[128], tmp[160], err[512] = "", buf[64];
    snprintf(path, sizeof path, "%s/corosync.conf", scratch);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    umask(077); /* the mode given wins over the umask */
    ck_assert_int_eq(cconf_write_file(path, "one\n", 4, 0644, err, sizeof err), 1);
    ck_assert_int_eq(scratch_slurp(path, buf, sizeof buf), 4);
    ck_assert(!memcmp(buf, "one\n", 4));
    ck_assert_int_eq(mode_of(path), 0644);
    ck_assert_int_eq(access(tmp, F_OK), -1);
    struct stat before, after;
    ck_assert_int_eq(stat(path, &before), 0);
    ck_assert_int_eq(cconf_write_file(path, "one\n", 4, 0644, err, sizeof err), 0); /* untouched */
    ck_assert_int_eq(stat(path, &after), 0);
    ck_assert_int_eq(before.st_ino, after.st_ino);
    ck_assert_int_eq(cconf_write_file(path, "one\n", 4, 0640, err, sizeof err), 1); /* the mode differs */
    ck_assert_int_eq(mode_of(path), 0640);
    ck_assert_int_eq(cconf_write_file(path, "one", 3, 0640, err, sizeof err), 1); /* a prefix differs */
    ck_assert_int_eq(scratch_slurp(path, buf, sizeof buf), 3);
    ck_assert_int_eq(cconf_write_file(path, "", 0, 0640, err, sizeof err), 1);
    ck_assert_int_eq(scratch_slurp(path, buf, sizeof buf), 0);
    ck_assert_int_eq(cconf_write_file(path, "", 0, 0640, err, sizeof err), 0);
    ck_assert_int_eq(entries(scratch), 1);

    /* bigger than one comparison block, differing only in its last byte */
    static char big[10000], big2[10000];
    memset(big, 'a', sizeof big);
    memcpy(big2, big, sizeof big);
    big2[sizeof big2 - 1] = 'b';
    ck_assert_int_eq(cconf_write_file(path, big, sizeof big, 0644, err, sizeof err), 1);
    ck_assert_int_eq(cconf_write_file(path, big, sizeof big, 0644, err, sizeof err), 0);
    ck_assert_int_eq(cconf_write_file(path, big2, sizeof big2, 0644, err, sizeof err), 1);
    ck_assert_int_eq(cconf_write_file(path, big2, sizeof big2, 0644, err, sizeof err), 0);
    ck_assert_int_eq(entries(scratch), 1);
}
END_TEST

START_TEST(write_file_leftovers_and_errors)
{
    char path[128], tmp[160], target[160], err[512] = "", buf[64];
    snprintf(path, sizeof path, "%s/corosync.conf", scratch);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(target, sizeof target, "%s/elsewhere", scratch);

    /* a crash left path.tmp: it goes, read-only or not */
    int fd = open(tmp, O_WRONLY | O_CREAT, 0400);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "half", 4), 4);
    close(fd);
    ck_assert_int_eq(cconf_write_file(path, "new\n", 4, 0644, err, sizeof err), 1);
    ck_assert_int_eq(access(tmp, F_OK), -1);
    ck_assert_int_eq(scratch_slurp(path, buf, sizeof buf), 4);

    /* a link planted at path.tmp is replaced, not followed */
    ck_assert_int_eq(symlink(target, tmp), 0);
    ck_assert_int_eq(cconf_write_file(path, "newer\n", 6, 0644, err, sizeof err), 1);
    ck_assert_int_eq(access(target, F_OK), -1);
    ck_assert_int_eq(entries(scratch), 1);

    /* a link at path is not "the same file": it is replaced by a file */
    ck_assert_int_eq(unlink(path), 0);
    fd = open(target, O_WRONLY | O_CREAT, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "x", 1), 1);
    close(fd);
    ck_assert_int_eq(symlink(target, path), 0);
    ck_assert_int_eq(cconf_write_file(path, "x", 1, 0644, err, sizeof err), 1);
    struct stat st;
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert(S_ISREG(st.st_mode));

    /* errors name the file and the call */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no/such/dir/corosync.conf", scratch);
    ck_assert_int_eq(cconf_write_file(missing, "x", 1, 0644, err, sizeof err), -ENOENT);
    char want[256];
    snprintf(want, sizeof want, "%s.tmp: open failed: No such file or directory", missing);
    ck_assert_str_eq(err, want);
    char dir[160];
    snprintf(dir, sizeof dir, "%s/adir", scratch);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    ck_assert_int_eq(cconf_write_file(dir, "x", 1, 0644, err, sizeof err), -EISDIR);
    snprintf(want, sizeof want, "%s.tmp: rename over %s failed: Is a directory", dir, dir);
    ck_assert_str_eq(err, want);
    snprintf(want, sizeof want, "%s.tmp", dir);
    ck_assert_int_eq(access(want, F_OK), -1); /* cleaned up */
    static char longpath[5000];
    memset(longpath, 'a', sizeof longpath - 1);
    ck_assert_int_eq(cconf_write_file(longpath, "x", 1, 0644, err, sizeof err), -ENAMETOOLONG);
}
END_TEST

START_TEST(authkey)
{
    char a[128], b[128], err[512] = "";
    unsigned char ka[CCONF_AUTHKEY_LEN + 1], kb[CCONF_AUTHKEY_LEN + 1];
    snprintf(a, sizeof a, "%s/authkey", scratch);
    snprintf(b, sizeof b, "%s/authkey2", scratch);
    umask(0);
    ck_assert_msg(cconf_authkey_create(a, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(cconf_authkey_create(b, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(mode_of(a), 0400);
    ck_assert_int_eq(mode_of(b), 0400);
    ck_assert_int_eq(scratch_slurp(a, (char *)ka, sizeof ka), CCONF_AUTHKEY_LEN);
    ck_assert_int_eq(scratch_slurp(b, (char *)kb, sizeof kb), CCONF_AUTHKEY_LEN);
    ck_assert(memcmp(ka, kb, CCONF_AUTHKEY_LEN));
    /* a new key replaces the old one */
    ck_assert_int_eq(cconf_authkey_create(a, err, sizeof err), 0);
    ck_assert_int_eq(scratch_slurp(a, (char *)kb, sizeof kb), CCONF_AUTHKEY_LEN);
    ck_assert(memcmp(ka, kb, CCONF_AUTHKEY_LEN));
    ck_assert_int_eq(entries(scratch), 2);
    char missing[160];
    snprintf(missing, sizeof missing, "%s/none/authkey", scratch);
    ck_assert_int_eq(cconf_authkey_create(missing, err, sizeof err), -ENOENT);
    ck_assert_ptr_nonnull(strstr(err, "open failed"));
}
END_TEST

/* ---------------------------------------------------------------- corosync -t */

/* corosync 3.1's `corosync -t -c FILE` parses FILE, reads the logging
 * section (it opens the log file), reads the authkey, checks the totem
 * settings and the nodelist, and exits before it opens a socket, forks or
 * takes its lock (checked with strace: no socket, bind or fork).  It must
 * find the local node in the nodelist, by host name.  So it runs here in
 * new UTS, network and mount namespaces: the host name is the first node's,
 * no network is reachable, and /etc/corosync, /var/lib/corosync and
 * /var/log/corosync are a scratch directory's.  Nothing of the machine's
 * corosync is read or written, and no corosync starts. */
static const char *corosync_path(void)
{
    static const char *const where[] = {"/usr/sbin/corosync", "/sbin/corosync", "/usr/local/sbin/corosync"};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++)
        if (access(where[i], X_OK) == 0)
            return where[i];
    return NULL;
}

/* Why corosync -t cannot run here, or NULL when it can. */
static const char *corosync_unavailable(void)
{
    if (!corosync_path())
        return "corosync is not installed";
    if (geteuid() != 0)
        return "namespaces for corosync -t need root";
    const char *dirs[] = {"/etc/corosync", "/var/lib/corosync", "/var/log/corosync"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        if (access(dirs[i], F_OK) < 0)
            return "a corosync directory to bind over is missing (/etc/corosync, /var/lib/corosync or "
                   "/var/log/corosync)";
    if (system("unshare -n -m -u --propagation private true >/dev/null 2>&1") != 0)
        return "cannot create network, mount and UTS namespaces here";
    return NULL;
}

/* Runs corosync -t on `conf` (written to the scratch dir) with the pool's
 * first joined host as the local node.  Returns corosync's exit status;
 * log gets what corosync logged. */
static int corosync_t(const char *conf, const char *local, char *log, size_t loglen)
{
    char path[256], cmd[2048], err[512];
    const char *sub[] = {"etc", "lib", "log"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", scratch, sub[i]);
        ck_assert(mkdir(path, 0755) == 0 || errno == EEXIST);
    }
    snprintf(path, sizeof path, "%s/etc/authkey", scratch);
    ck_assert_msg(cconf_authkey_create(path, err, sizeof err) == 0, "%s", err);
    snprintf(path, sizeof path, "%s/corosync.conf", scratch);
    ck_assert_int_ge(cconf_write_file(path, conf, strlen(conf), 0644, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/log/corosync.log", scratch);
    unlink(path);
    snprintf(cmd, sizeof cmd,
             "unshare -n -m -u --propagation private sh -c '"
             "hostname %s && mount --bind %s/etc /etc/corosync && mount --bind %s/lib /var/lib/corosync && "
             "mount --bind %s/log /var/log/corosync && exec timeout 20 %s -t -c %s/corosync.conf' "
             ">%s/out 2>&1",
             local, scratch, scratch, scratch, corosync_path(), scratch, scratch);
    int st = system(cmd);
    ck_assert_msg(st != -1 && WIFEXITED(st), "could not run: %s", cmd);
    log[0] = 0;
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(log, 1, loglen - 1, f);
        log[n] = 0;
        fclose(f);
    }
    return WEXITSTATUS(st);
}

static void corosync_accepts(const struct ha_db *db, const char *what)
{
    char err[256], log[4096];
    ck_assert_msg(cconf_render(db, out, sizeof out, err, sizeof err) > 0, "%s", err);
    int first = 0;
    while (!db->host[first].joined)
        first++;
    int rc = corosync_t(out, db->host[first].name, log, sizeof log);
    ck_assert_msg(rc == 0, "corosync -t refused %s (exit %d):\n%s\n--- the file:\n%s", what, rc, log, out);
    ck_assert_msg(strstr(log, "exiting normally"), "corosync -t said:\n%s", log);
}

START_TEST(corosync_checks_rendered_configs)
{
    const char *why = corosync_unavailable();
    if (why) {
        printf("test_cconf: SKIP corosync -t: %s\n", why);
        return;
    }
    struct ha_db db;
    pool3(&db);
    corosync_accepts(&db, "a three-host IPv4 pool");
    db.host[0].joined = false; /* h2 is the local node now */
    db.set.token_timeout = CCONF_TOKEN_MIN_MS;
    corosync_accepts(&db, "a two-host pool with the shortest token");
    ha_db_free(&db);

    pool3(&db);
    snprintf(db.host[0].addr, sizeof db.host[0].addr, "fd00:99::1");
    snprintf(db.host[1].addr, sizeof db.host[1].addr, "fd00:99::2");
    snprintf(db.host[2].addr, sizeof db.host[2].addr, "fd00:99::3");
    db.host[2].nodeid = CCONF_NODEID_MAX;
    corosync_accepts(&db, "an IPv6 pool with the largest nodeid");
    ha_db_free(&db);

    pool_max(&db);
    corosync_accepts(&db, "the largest pool (64 hosts, the longest names and addresses)");

    /* the harness notices a refusal: what cconf_render refuses, corosync
     * refuses too (a nodeid twice, knet's 16-bit node ids, a token too short
     * for its retransmit timeout, mixed families) */
    char log[4096], err[256];
    pool3(&db);
    ck_assert_int_gt(cconf_render(&db, out, sizeof out, err, sizeof err), 0);
    char *p = strstr(out, "nodeid: 2");
    ck_assert_ptr_nonnull(p);
    p[8] = '1';
    ck_assert_int_ne(corosync_t(out, "h1", log, sizeof log), 0);
    ck_assert_msg(strstr(log, "Nodeid 1 appears twice"), "%s", log);
    p[8] = '2';
    static char edited[CCONF_RENDER_MAX + 16];
    p = strstr(out, "nodeid: 3\n");
    ck_assert_ptr_nonnull(p);
    snprintf(edited, sizeof edited, "%.*snodeid: 65536%s", (int)(p - out), out, p + 9);
    ck_assert_int_ne(corosync_t(edited, "h1", log, sizeof log), 0);
    ck_assert_msg(strstr(log, "nodeid to be less than 65536"), "%s", log);
    ck_assert_int_gt(cconf_render(&db, out, sizeof out, err, sizeof err), 0);
    p = strstr(out, "token: 3000\n");
    ck_assert_ptr_nonnull(p);
    snprintf(edited, sizeof edited, "%.*stoken: %d%s", (int)(p - out), out, CCONF_TOKEN_MIN_MS - 1, p + 11);
    ck_assert_int_ne(corosync_t(edited, "h1", log, sizeof log), 0);
    ck_assert_msg(strstr(log, "Not appropriate token"), "%s", log);
    memcpy(strstr(out, "10.0.0.3"), "fd00::03", 8);
    ck_assert_int_ne(corosync_t(out, "h1", log, sizeof log), 0);
    ck_assert_msg(strstr(log, "different IP families"), "%s", log);
    ha_db_free(&db);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cconf");
    TCase *render = tcase_create("render");
    tcase_add_test(render, render_three_hosts);
    tcase_add_test(render, render_only_joined_hosts);
    tcase_add_test(render, render_ipv6);
    tcase_add_test(render, render_errors);
    tcase_add_test(render, render_buffer_sizes);
    tcase_add_test(render, render_deterministic);
    suite_add_tcase(s, render);
    TCase *files = tcase_create("files");
    tcase_add_checked_fixture(files, setup, teardown);
    tcase_add_test(files, write_file_replaces_once);
    tcase_add_test(files, write_file_leftovers_and_errors);
    tcase_add_test(files, authkey);
    suite_add_tcase(s, files);
    TCase *coro = tcase_create("corosync");
    tcase_set_timeout(coro, 120);
    tcase_add_checked_fixture(coro, setup, teardown);
    tcase_add_test(coro, corosync_checks_rendered_configs);
    suite_add_tcase(s, coro);
    return vigil_run_suite(s);
}
