/* fuselun: one rig host's path to the shared LUN, with switchable faults.
 *
 * The rig's LUN is a loop device every host can see.  A real host reaches
 * its LUN through a fabric that can fail on its own: the disk then answers
 * with I/O errors (dm-error, a path that is gone) or does not answer at all
 * (a dead fabric, multipath queueing with no path).  This kernel has neither
 * device-mapper nor nbd, so each host gets this FUSE passthrough instead,
 * mounted in the host's private mount namespace: a directory holding one
 * file, `lun`, whose reads, writes and fsyncs go to the loop device with
 * O_DIRECT.  Its mode is switched from outside the host (`rig storage-loss`,
 * `rig heal`) over a unix socket:
 *
 *   ok     I/O passes through
 *   error  read, write and fsync fail with EIO at once
 *   hang   read, write and fsync wait, in this server, until the mode
 *          changes: back to ok they are performed, to error they fail with
 *          EIO.  The caller sleeps uninterruptibly in the kernel meanwhile
 *          (FUSE only lets a fatal signal go once the request is in the
 *          server), as on a real hung LUN; the host's power loss ends it.
 *
 * Why the file behaves like the disk:
 *   - every open gets FOPEN_DIRECT_IO: no page cache on the host's side, so
 *     a write on one host is read by every other host at once;
 *   - the server opens the loop device O_DIRECT (and with the caller's
 *     O_SYNC/O_DSYNC), so offsets and lengths must be multiples of the
 *     LUN's logical sector size: a 512-byte I/O on a 4096-byte LUN fails
 *     with EINVAL, as on 4K hardware.  What it cannot check is the
 *     alignment of the caller's buffer (FUSE copies the data);
 *   - st_size is the device's size, st_blksize its logical sector size;
 *     truncation and other attribute changes are ignored, as on a block
 *     device.
 * Open, stat and close never fail or wait, whatever the mode: only I/O does.
 *
 *   fuselun [--mode ok|error|hang] --control SOCKET [--pidfile FILE]
 *           [--name FSNAME] DEVICE MOUNTPOINT
 *       serve DEVICE at MOUNTPOINT/lun in the foreground; FILE gets the
 *       server's PID once the mount is in place.  SIGTERM/SIGINT/SIGHUP
 *       detach the mount and end the server; SIGKILL (power loss) leaves a
 *       dead mount that goes away with the mount namespace.
 *   fuselun --ctl SOCKET ok|error|hang|status
 *       set (or read) the mode of a running server; prints
 *       "MODE waiting=N reads=N writes=N errors=N" (waiting: requests held
 *       by hang right now).
 *
 * See docs/rig.md ("The shared LUN").  Every wait is bounded except the one
 * hang is for. */
#define FUSE_USE_VERSION 312
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define LUN_INO 2
#define LUN_NAME "lun"
#define MAX_THREADS 64 /* also the most I/Os that can hang before stat waits too */
#define CTL_LINE 128
#define CTL_TIMEOUT_S 5
#define ATTR_TIMEOUT 3600.0

enum mode { MODE_OK, MODE_ERROR, MODE_HANG };
static const char *const mode_names[] = {"ok", "error", "hang"};

static struct {
    const char *device, *mountpoint;
    uint64_t size;
    unsigned sector;
    struct timespec born;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum mode mode;
    unsigned waiting;
    unsigned long long reads, writes, errors;
} L = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static int parse_mode(const char *s)
{
    for (int m = 0; m < 3; m++)
        if (strcmp(s, mode_names[m]) == 0)
            return m;
    return -1;
}

/* gate: the fabric.  0: go ahead; -EIO: the LUN is lost for this host. */
static int gate(void)
{
    pthread_mutex_lock(&L.mu);
    L.waiting++;
    while (L.mode == MODE_HANG)
        pthread_cond_wait(&L.cv, &L.mu);
    L.waiting--;
    int rc = L.mode == MODE_ERROR ? -EIO : 0;
    pthread_mutex_unlock(&L.mu);
    return rc;
}

static void count(unsigned long long *c, int rc)
{
    pthread_mutex_lock(&L.mu);
    (*c)++;
    if (rc < 0)
        L.errors++;
    pthread_mutex_unlock(&L.mu);
}

static void fill_stat(fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    st->st_atim = st->st_mtim = st->st_ctim = L.born;
    if (ino == FUSE_ROOT_ID) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
    } else {
        st->st_mode = S_IFREG | 0600;
        st->st_nlink = 1;
        st->st_size = (off_t)L.size;
        st->st_blksize = (blksize_t)L.sector;
        st->st_blocks = (blkcnt_t)(L.size / 512);
    }
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    /* no page cache anywhere: nothing may be written back later */
    conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    if (parent != FUSE_ROOT_ID || strcmp(name, LUN_NAME) != 0) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct fuse_entry_param e = {.ino = LUN_INO, .attr_timeout = ATTR_TIMEOUT, .entry_timeout = ATTR_TIMEOUT};
    fill_stat(LUN_INO, &e.attr);
    fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)fi;
    if (ino != FUSE_ROOT_ID && ino != LUN_INO) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct stat st;
    fill_stat(ino, &st);
    fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

/* a block device keeps its size and owner: changes are ignored (O_TRUNC,
 * dd's ftruncate) and the unchanged attributes answered */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
    (void)attr;
    (void)to_set;
    op_getattr(req, ino, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)fi;
    if (ino != FUSE_ROOT_ID) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    static const struct {
        const char *name;
        fuse_ino_t ino;
        mode_t mode;
    } ents[] = {{".", FUSE_ROOT_ID, S_IFDIR}, {"..", FUSE_ROOT_ID, S_IFDIR}, {LUN_NAME, LUN_INO, S_IFREG}};
    char buf[512];
    size_t used = 0;
    if (size > sizeof buf)
        size = sizeof buf;
    for (off_t i = off; i >= 0 && i < 3; i++) {
        struct stat st = {.st_ino = ents[i].ino, .st_mode = ents[i].mode};
        size_t n = fuse_add_direntry(req, buf + used, size - used, ents[i].name, &st, i + 1);
        if (n > size - used)
            break;
        used += n;
    }
    fuse_reply_buf(req, buf, used);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (ino != LUN_INO) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    int fl = (fi->flags & O_ACCMODE) | O_DIRECT | O_CLOEXEC | (fi->flags & (O_SYNC | O_DSYNC));
    int fd = open(L.device, fl);
    if (fd < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    fi->fh = (uint64_t)fd;
    fi->direct_io = 1;
    fi->keep_cache = 0;
    fi->noflush = 1;
    if (fuse_reply_open(req, fi) == -ENOENT) /* the caller was interrupted */
        close(fd);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    close((int)fi->fh);
    fuse_reply_err(req, 0);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    (void)fi;
    fuse_reply_err(req, 0); /* close never does I/O, so it never hangs */
}

static void *io_buf(size_t size)
{
    void *p = NULL;
    if (posix_memalign(&p, 4096, size ? size : 1))
        return NULL;
    return p;
}

/* one passthrough I/O (wdata: a write of it), through the gate, from or to
 * an aligned buffer *bufp the caller frees: bytes done, or -errno */
static ssize_t lun_io(struct fuse_file_info *fi, const char *wdata, size_t size, off_t off, void **bufp)
{
    ssize_t n = gate();
    if (n == 0 && !(*bufp = io_buf(size)))
        n = -ENOMEM;
    if (n == 0) {
        int fd = (int)fi->fh;
        if (wdata)
            memcpy(*bufp, wdata, size); /* O_DIRECT wants an aligned buffer */
        n = wdata ? pwrite(fd, *bufp, size, off) : pread(fd, *bufp, size, off);
        if (n < 0)
            n = -errno;
    }
    count(wdata ? &L.writes : &L.reads, n < 0 ? -1 : 0);
    return n;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)ino;
    void *buf = NULL;
    ssize_t n = lun_io(fi, NULL, size, off, &buf);
    if (n < 0)
        fuse_reply_err(req, (int)-n);
    else
        fuse_reply_buf(req, buf, (size_t)n);
    free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    (void)ino;
    void *buf = NULL;
    ssize_t n = lun_io(fi, data, size, off, &buf);
    if (n < 0)
        fuse_reply_err(req, (int)-n);
    else
        fuse_reply_write(req, (size_t)n);
    free(buf);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)ino;
    (void)datasync;
    int rc = gate();
    if (rc == 0 && fdatasync((int)fi->fh) < 0)
        rc = -errno;
    fuse_reply_err(req, -rc);
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readdir = op_readdir,
    .open = op_open,
    .release = op_release,
    .flush = op_flush,
    .read = op_read,
    .write = op_write,
    .fsync = op_fsync,
};

/* ---------------------------------------------------------------- control socket */

static int ctl_addr(const char *path, struct sockaddr_un *a)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof a->sun_path) {
        fprintf(stderr, "fuselun: socket path too long: %s\n", path);
        return -ENAMETOOLONG;
    }
    strcpy(a->sun_path, path);
    return 0;
}

static void set_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = CTL_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* one line in (up to CTL_LINE-1 bytes), NUL-terminated without its newline */
static int read_line(int fd, char *line)
{
    size_t len = 0;
    while (len < CTL_LINE - 1) {
        ssize_t n = read(fd, line + len, CTL_LINE - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (memchr(line, '\n', len))
            break;
    }
    line[len] = 0;
    line[strcspn(line, "\n")] = 0;
    return len ? 0 : -EIO;
}

static void ctl_serve(int cfd)
{
    char line[CTL_LINE], out[CTL_LINE + 128];
    set_timeouts(cfd);
    if (read_line(cfd, line) < 0)
        return;
    int m = parse_mode(line);
    if (m < 0 && strcmp(line, "status") != 0) {
        snprintf(out, sizeof out, "error: unknown command '%.64s' (ok, error, hang or status)\n", line);
    } else {
        pthread_mutex_lock(&L.mu);
        if (m >= 0 && L.mode != (enum mode)m) {
            L.mode = (enum mode)m;
            pthread_cond_broadcast(&L.cv);
        }
        snprintf(out, sizeof out, "%s waiting=%u reads=%llu writes=%llu errors=%llu\n", mode_names[L.mode],
                 L.waiting, L.reads, L.writes, L.errors);
        pthread_mutex_unlock(&L.mu);
    }
    if (write(cfd, out, strlen(out)) < 0)
        return; /* the client gave up: nothing to tell it */
}

static void *ctl_thread(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno != EINTR && errno != ECONNABORTED)
                usleep(100 * 1000); /* out of descriptors: do not spin */
            continue;
        }
        ctl_serve(cfd);
        close(cfd);
    }
    return NULL;
}

static int ctl_listen(const char *path)
{
    struct sockaddr_un a;
    if (ctl_addr(path, &a) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("fuselun: socket");
        return -1;
    }
    unlink(path); /* left by a server that lost power */
    mode_t old = umask(077);
    int rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    umask(old);
    if (rc < 0 || listen(fd, 4) < 0) {
        fprintf(stderr, "fuselun: %s: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int ctl_client(const char *path, const char *cmd)
{
    if (parse_mode(cmd) < 0 && strcmp(cmd, "status") != 0) {
        fprintf(stderr, "fuselun: unknown command '%s' (ok, error, hang or status)\n", cmd);
        return 2;
    }
    struct sockaddr_un a;
    if (ctl_addr(path, &a) < 0)
        return 1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("fuselun: socket");
        return 1;
    }
    set_timeouts(fd);
    char line[CTL_LINE];
    snprintf(line, sizeof line, "%s\n", cmd);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 || write(fd, line, strlen(line)) < 0) {
        fprintf(stderr, "fuselun: %s: %s (is the host up?)\n", path, strerror(errno));
        close(fd);
        return 1;
    }
    int rc = read_line(fd, line);
    close(fd);
    if (rc < 0) {
        fprintf(stderr, "fuselun: %s: no answer\n", path);
        return 1;
    }
    printf("%s\n", line);
    return strncmp(line, "error:", 6) == 0 ? 1 : 0;
}

/* ---------------------------------------------------------------- server */

/* SIGTERM, SIGINT, SIGHUP: detach the mount and go.  A request held by hang
 * then fails (ENOTCONN) when the kernel sees the device closed. */
static void *signal_thread(void *arg)
{
    sigset_t *set = arg;
    int sig = 0;
    sigwait(set, &sig);
    fprintf(stderr, "fuselun: signal %d: detaching %s\n", sig, L.mountpoint);
    umount2(L.mountpoint, MNT_DETACH);
    _exit(0);
}

static int open_device(void)
{
    int fd = open(L.device, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "fuselun: %s: %s\n", L.device, strerror(errno));
        return -1;
    }
    struct stat st;
    int ss = 0, rc = -1;
    if (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode))
        fprintf(stderr, "fuselun: %s: not a block device\n", L.device);
    else if (ioctl(fd, BLKGETSIZE64, &L.size) < 0 || ioctl(fd, BLKSSZGET, &ss) < 0)
        fprintf(stderr, "fuselun: %s: size or sector size: %s\n", L.device, strerror(errno));
    else if (ss != 512 && ss != 4096)
        fprintf(stderr, "fuselun: %s: logical sector size %d (512 or 4096)\n", L.device, ss);
    else {
        L.sector = (unsigned)ss;
        rc = 0;
    }
    close(fd);
    return rc;
}

static int write_pidfile(const char *path)
{
    char tmp[4096], pid[32];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f || fputs(pid, f) == EOF || fclose(f) == EOF || rename(tmp, path) < 0) {
        fprintf(stderr, "fuselun: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int serve(const char *ctl, const char *pidfile, const char *fsname)
{
    if (open_device() < 0)
        return 1;
    clock_gettime(CLOCK_REALTIME, &L.born);

    /* signals go to signal_thread only; created before any other thread */
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = ctl_listen(ctl);
    if (lfd < 0)
        return 1;

    char opt[512];
    snprintf(opt, sizeof opt, "fsname=%s,subtype=vigil-lun,default_permissions", fsname);
    char *argv[] = {"fuselun", "-o", opt, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(3, argv);
    struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
    if (!se) {
        fprintf(stderr, "fuselun: fuse_session_new failed\n");
        return 1;
    }
    if (fuse_session_mount(se, L.mountpoint) != 0) {
        fprintf(stderr, "fuselun: cannot mount on %s\n", L.mountpoint);
        fuse_session_destroy(se);
        return 1;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, signal_thread, &set) || pthread_detach(t) ||
        pthread_create(&t, NULL, ctl_thread, (void *)(intptr_t)lfd) || pthread_detach(t)) {
        fprintf(stderr, "fuselun: cannot start a thread\n");
        umount2(L.mountpoint, MNT_DETACH);
        return 1;
    }
    if (pidfile && write_pidfile(pidfile) < 0) {
        umount2(L.mountpoint, MNT_DETACH);
        return 1;
    }
    fprintf(stderr, "fuselun: %s (%llu bytes, %u-byte sectors) at %s/%s, mode %s\n", L.device,
            (unsigned long long)L.size, L.sector, L.mountpoint, LUN_NAME, mode_names[L.mode]);

    struct fuse_loop_config *cfg = fuse_loop_cfg_create();
    if (!cfg) {
        umount2(L.mountpoint, MNT_DETACH);
        return 1;
    }
    fuse_loop_cfg_set_max_threads(cfg, MAX_THREADS);
    fuse_loop_cfg_set_idle_threads(cfg, 2);
    int rc = fuse_session_loop_mt(se, cfg);
    fuse_loop_cfg_destroy(cfg);
    fuse_session_unmount(se);
    fuse_session_destroy(se);
    fprintf(stderr, "fuselun: the session ended (%d)\n", rc);
    return rc == 0 ? 0 : 1;
}

static void usage(FILE *f)
{
    fputs("usage: fuselun [--mode ok|error|hang] --control SOCKET [--pidfile FILE] [--name FSNAME] DEVICE MOUNTPOINT\n"
          "       fuselun --ctl SOCKET ok|error|hang|status\n"
          "Serves DEVICE (a block device) at MOUNTPOINT/lun with FUSE, O_DIRECT, switchable\n"
          "to I/O errors or to hanging (tests/rig/fuselun.c, docs/rig.md).\n",
          f);
}

int main(int argc, char **argv)
{
    const char *ctl = NULL, *pidfile = NULL, *fsname = "vigil-lun", *mode = "ok";
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            usage(stderr);
            return 2;
        }
        if (strcmp(a, "--ctl") == 0) {
            if (i + 2 != argc - 1) {
                usage(stderr);
                return 2;
            }
            return ctl_client(argv[i + 1], argv[i + 2]);
        } else if (strcmp(a, "--control") == 0) {
            ctl = argv[++i];
        } else if (strcmp(a, "--pidfile") == 0) {
            pidfile = argv[++i];
        } else if (strcmp(a, "--name") == 0) {
            fsname = argv[++i];
        } else if (strcmp(a, "--mode") == 0) {
            mode = argv[++i];
        } else {
            fprintf(stderr, "fuselun: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (argc - i != 2 || !ctl) {
        usage(stderr);
        return 2;
    }
    int m = parse_mode(mode);
    if (m < 0) {
        fprintf(stderr, "fuselun: unknown mode '%s' (ok, error or hang)\n", mode);
        return 2;
    }
    if (strchr(fsname, ',') || strlen(fsname) > 200) {
        fprintf(stderr, "fuselun: --name: no commas, at most 200 characters\n");
        return 2;
    }
    L.mode = (enum mode)m;
    L.device = argv[i];
    L.mountpoint = argv[i + 1];
    return serve(ctl, pidfile, fsname);
}
