/* vigil: the operator's command line.  It checks the words it can check
 * alone (the command exists, --help), then hands the command line to vigild
 * on this host over libqb IPC and prints its answer.  Exit status: 0 done,
 * 1 refused (the reason is printed), 2 usage error, 3 unavailable (vigild
 * not running, or the capability not built yet). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <qb/qbipcc.h>

#include "../agents/vagent.h"
#include "../daemon/cmdtable.h"
#include "../daemon/protocol.h"

static void usage(FILE *f)
{
    fprintf(f, "Usage: vigil COMMAND [ARGS] [--json] [--help]\n"
               "The command line of vigil, a high-availability manager for KVM virtual machines.\n"
               "It talks to vigild on this host; commands that change the pool are carried out by\n"
               "the pool's master and succeed only once every member has stored the change.\n"
               "Exit status: 0 done, 1 refused (the reason is printed), 2 usage error,\n"
               "3 unavailable (vigild not running, or the capability not built yet).\n\nCommands:\n");
    for (int i = 0; i < vigil_ncmds; i++)
        fprintf(f, "  vigil %s %s\n      %s%s%s%s\n", vigil_cmds[i].words, vigil_cmds[i].args, vigil_cmds[i].what,
                vigil_cmds[i].issue ? "  [not available yet: issue " : "", vigil_cmds[i].issue ? vigil_cmds[i].issue : "",
                vigil_cmds[i].issue ? "]" : "");
}

/* Sends one command line; prints the answer unless out is given (then the
 * answer text is returned there, malloc'ed).  Returns the exit code. */
static int call(qb_ipcc_connection_t *conn, int argc, char **argv, uint32_t flags, int timeout_ms, char **out)
{
    size_t len = sizeof(struct vigil_req);
    for (int i = 0; i < argc; i++)
        len += strlen(argv[i]) + 1;
    if (len - sizeof(struct vigil_req) > VIGIL_ARGS_MAX) {
        fprintf(stderr, "vigil: the command line is too long\n");
        return 2;
    }
    struct vigil_req *rq = calloc(1, len);
    char *buf = malloc(VIGIL_IPC_MAX);
    if (!rq || !buf) {
        free(rq);
        free(buf);
        fprintf(stderr, "vigil: out of memory\n");
        return 1;
    }
    rq->hdr.id = VIGIL_REQ_COMMAND;
    rq->hdr.size = (int32_t)len;
    rq->flags = flags;
    rq->argc = (uint32_t)argc;
    size_t off = 0;
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(argv[i]) + 1;
        memcpy(rq->args + off, argv[i], l);
        off += l;
    }
    struct iovec iov = {.iov_base = rq, .iov_len = len};
    ssize_t n = qb_ipcc_sendv_recv(conn, &iov, 1, buf, VIGIL_IPC_MAX, timeout_ms);
    free(rq);
    if (n < (ssize_t)sizeof(struct vigil_resp)) {
        fprintf(stderr, "vigil: no answer from vigild (%s)\n",
                n == -ETIMEDOUT || n == -EAGAIN ? "timed out" : n < 0 ? strerror((int)-n) : "short reply");
        free(buf);
        return 3;
    }
    struct vigil_resp *rs = (struct vigil_resp *)(void *)buf;
    buf[n - 1] = 0;
    int code = rs->code >= 0 && rs->code <= 3 ? rs->code : 1;
    if (out)
        *out = strdup(rs->text);
    else if (code == 0)
        fputs(rs->text, stdout);
    else {
        fputs("vigil: ", stderr);
        fputs(rs->text, stderr);
    }
    free(buf);
    return code;
}

/* fence-device set --password-file F: the password is read here, on the
 * host the command is typed on, from a file only root can read; vigild gets
 * it as `--password SECRET` (never on a command line anyone can see).
 * Returns 0, or 1 with the reason printed. */
static int read_password_file(const char *path, char *pw, size_t cap)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "vigil fence-device set: refused: cannot open the password file %s: %s\n", path,
                errno == ELOOP ? "it is a symbolic link" : strerror(errno));
        return 1;
    }
    struct stat st;
    const char *why = NULL;
    char mode[64];
    if (fstat(fd, &st) < 0)
        why = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "it is not a regular file";
    else if (st.st_mode & 077) {
        snprintf(mode, sizeof mode, "its mode is %04o: its group or others may read it (chmod 600 it)",
                 (unsigned)(st.st_mode & 07777));
        why = mode;
    } else if (st.st_uid != 0)
        why = "it is not owned by root";
    char buf[256];
    ssize_t n = 0;
    if (!why) {
        n = read(fd, buf, sizeof buf - 1);
        if (n < 0)
            why = strerror(errno);
    }
    close(fd);
    if (!why && n >= 0) {
        size_t len = (size_t)n;
        buf[len] = 0;
        if (len > 0 && buf[len - 1] == '\n')
            buf[--len] = 0;
        if (len > 0 && buf[len - 1] == '\r')
            buf[--len] = 0;
        if (!len)
            why = "it is empty";
        else if (len >= cap)
            why = "the password is longer than 127 bytes";
        for (size_t i = 0; i < len && !why; i++)
            if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
                why = "it holds more than one line, or control characters";
        if (!why)
            memcpy(pw, buf, len + 1);
    }
    explicit_bzero(buf, sizeof buf);
    if (why) {
        explicit_bzero(pw, cap);
        fprintf(stderr, "vigil fence-device set: refused: the password file %s: %s\n", path, why);
        return 1;
    }
    return 0;
}

/* vm import --xml FILE: the XML is read here, on the host the command is
 * typed on, and checked (vagent_xml_check: it parses, and names the VM, its
 * memory and vCPUs) before vigild sees it; the master checks it again.
 * vigild gets it as `--xml-data XML`.  Returns the XML (malloc'ed, NUL-
 * terminated), or NULL with the reason printed. */
static char *read_xml_file(const char *path, const char *want_name)
{
    char why[512] = "";
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        snprintf(why, sizeof why, "cannot open %s: %s", path, strerror(errno));
    else if (fstat(fd, &st) < 0)
        snprintf(why, sizeof why, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        snprintf(why, sizeof why, "%s is not a regular file", path);
    else if (st.st_size > VAGENT_XML_MAX)
        snprintf(why, sizeof why, "%s holds %lld bytes: a domain XML vigil stores is at most %d bytes", path,
                 (long long)st.st_size, VAGENT_XML_MAX);
    else if (!(buf = malloc(VAGENT_XML_MAX + 2)))
        snprintf(why, sizeof why, "out of memory");
    size_t n = 0;
    while (!why[0] && n <= VAGENT_XML_MAX) { /* the file may grow meanwhile: read one byte more than allowed */
        ssize_t k = read(fd, buf + n, VAGENT_XML_MAX + 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            snprintf(why, sizeof why, "%s: %s", path, strerror(errno));
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    if (fd >= 0)
        close(fd);
    char name[VAGENT_NAME_MAX], err[256];
    uint64_t mem_kib;
    int vcpus;
    if (!why[0] && n > VAGENT_XML_MAX)
        snprintf(why, sizeof why, "%s is larger than %d bytes", path, VAGENT_XML_MAX);
    else if (!why[0] && (!n || memchr(buf, 0, n)))
        snprintf(why, sizeof why, "%s is %s", path, n ? "not text (it holds a NUL byte)" : "empty");
    else if (!why[0] && (buf[n] = 0, vagent_xml_check(buf, n, name, &mem_kib, &vcpus, err, sizeof err) < 0))
        snprintf(why, sizeof why, "%s is not a domain XML vigil can store: %s", path, err);
    else if (!why[0] && want_name && strcmp(want_name, name))
        snprintf(why, sizeof why, "%s defines the domain '%s', not '%s'", path, name, want_name);
    if (why[0]) {
        fprintf(stderr, "vigil vm import: refused: %s\n", why);
        free(buf);
        return NULL;
    }
    return buf;
}

static qb_ipcc_connection_t *connect_vigild(int *code)
{
    qb_ipcc_connection_t *conn = qb_ipcc_connect(VIGIL_IPC_NAME, VIGIL_IPC_MAX);
    if (conn)
        return conn;
    int e = errno;
    if (e == EACCES || e == EPERM) {
        fprintf(stderr, "vigil: refused by vigild: only root and members of group vigil may use it\n");
        *code = 1;
    } else {
        fprintf(stderr, "vigil: cannot reach vigild on this host (%s): is it running?\n", strerror(e));
        *code = 3;
    }
    return NULL;
}

/* vigil events --follow: ask for what is newer than the last line seen */
static int follow(qb_ipcc_connection_t *conn, int argc, char **argv, uint32_t flags)
{
    unsigned long long after = 0;
    char *args[64], num[32];
    int n = 0;
    for (int i = 0; i < argc && n < 60; i++)
        if (strcmp(argv[i], "--follow"))
            args[n++] = argv[i];
    for (;;) {
        int m = n;
        char *v[64];
        memcpy(v, args, (size_t)n * sizeof *v);
        v[m++] = "--follow";
        if (after) {
            snprintf(num, sizeof num, "%llu", after);
            v[m++] = "--after";
            v[m++] = num;
        }
        char *text = NULL;
        int code = call(conn, m, v, flags, 10000, &text);
        if (code) {
            if (text)
                fprintf(stderr, "vigil: %s", text);
            free(text);
            return code;
        }
        /* vigild ends the answer with "#after N": where to go on from */
        for (char *line = text, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = 0;
            if (!strncmp(line, "#after ", 7))
                after = strtoull(line + 7, NULL, 10);
            else
                puts(line);
        }
        fflush(stdout);
        free(text);
        usleep(500 * 1000);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    int nw;
    const struct vigil_cmd *c = vigil_cmd_match(argc - 1, argv + 1, &nw);
    if (!c) {
        fprintf(stderr, "vigil: unknown command '%s' (see vigil --help)\n", argv[1]);
        return 2;
    }
    uint32_t flags = 0;
    bool do_follow = false;
    char *words[300];
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("Usage: vigil %s %s\n%s\n", c->words, c->args, c->what);
            if (c->issue)
                printf("Not available yet: it arrives with issue %s.\n", c->issue);
            return 0;
        }
        if (!strcmp(argv[i], "--json") && c->json && !c->issue)
            flags |= VIGIL_REQ_JSON;
        else if (n < 256)
            words[n++] = argv[i];
        else {
            fprintf(stderr, "vigil: too many arguments\n");
            return 2;
        }
        if (c->id == C_EVENTS && !strcmp(argv[i], "--follow"))
            do_follow = true;
    }
    if (c->issue) {
        fprintf(stderr, "vigil %s: not available yet (it arrives with issue %s)\n", c->words, c->issue);
        return 3;
    }
    /* what can be checked without vigild is checked here: no argument where
     * none is taken, and the leading required ones (NAME, HOST...) present */
    if ((!c->args[0] || !strcmp(c->args, "[--json]")) && n > nw) {
        fprintf(stderr, "vigil %s: unexpected argument '%s'\n", c->words, words[nw]);
        return 2;
    }
    int need = 0, have = 0;
    char syn[256];
    snprintf(syn, sizeof syn, "%s", c->args);
    for (char *save = NULL, *w = strtok_r(syn, " ", &save); w; w = strtok_r(NULL, " ", &save), need++) {
        bool upper = *w != 0;
        for (const char *p = w; *p; p++)
            upper &= (*p >= 'A' && *p <= 'Z') || *p == '_' || (*p >= '0' && *p <= '9');
        if (!upper)
            break;
    }
    for (int i = nw; i < n && words[i][0] != '-'; i++)
        have++;
    if (have < need) {
        fprintf(stderr, "usage: vigil %s %s\n", c->words, c->args);
        return 2;
    }
    static char password[128];
    if (c->id == C_FD_SET)
        for (int i = nw; i < n; i++) {
            if (!strcmp(words[i], "--password")) {
                fprintf(stderr, "vigil fence-device set: give the password in a file (--password-file F): a command "
                                "line is visible to every user of this host\n");
                return 2;
            }
            if (!strcmp(words[i], "--password-file")) {
                if (i + 1 >= n) {
                    fprintf(stderr, "vigil fence-device set: --password-file needs a file name\n");
                    return 2;
                }
                if (password[0]) {
                    fprintf(stderr, "vigil fence-device set: --password-file is given twice\n");
                    return 2;
                }
                if (read_password_file(words[i + 1], password, sizeof password))
                    return 1;
                words[i] = "--password";
                words[++i] = password;
            }
        }
    char *xml = NULL;
    if (c->id == C_VM_IMPORT) {
        const char *file = NULL, *vm = NULL;
        int at = -1;
        for (int i = nw; i < n; i++) {
            if (!strcmp(words[i], "--xml-data")) {
                fprintf(stderr, "vigil vm import: give the XML in a file (--xml FILE)\n");
                return 2;
            }
            if (!strcmp(words[i], "--xml")) {
                if (i + 1 >= n || file) {
                    fprintf(stderr, "vigil vm import: %s\n", file ? "--xml is given twice" : "--xml needs a file name");
                    return 2;
                }
                file = words[++i];
                at = i;
            } else if (words[i][0] != '-' && !vm)
                vm = words[i];
        }
        /* without --xml, vigild on this host asks its libvirt for VM's definition */
        if (!file && !vm) {
            fprintf(stderr, "vigil vm import: name the VM (its XML comes from this host's libvirt), or give its "
                            "XML with --xml FILE\n");
            return 2;
        }
        if (file && !(xml = read_xml_file(file, vm)))
            return 1;
        if (file) {
            words[at - 1] = "--xml-data";
            words[at] = xml;
        }
    }
    int code = 3;
    qb_ipcc_connection_t *conn = connect_vigild(&code);
    if (!conn) {
        free(xml);
        return code;
    }
    /* pool join waits for TLS, corosync and the first sync; leave for the
     * master to take this host out */
    int timeout = c->id == C_POOL_JOIN || c->id == C_POOL_LEAVE || c->id == C_POOL_CREATE ? 120000 : 60000;
    code = do_follow ? follow(conn, n, words, flags) : call(conn, n, words, flags, timeout, NULL);
    explicit_bzero(password, sizeof password);
    free(xml);
    qb_ipcc_disconnect(conn);
    return code;
}
