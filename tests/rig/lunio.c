/* lunio: one I/O on the LUN exactly as vigild does it, for the rig's tests.
 *
 * vigild opens its heartbeat LUN O_RDWR | O_DIRECT | O_SYNC and reads and
 * writes whole sectors from aligned buffers (storage/hbdisk.c).  `dd
 * oflag=direct` opens O_WRONLY and says little about why it failed; this
 * tool opens the way vigild does and prints errno's name, so the tests can
 * tell EIO (storage lost) from EINVAL (a misaligned I/O) on
 * /run/vigil-lun/lun.
 *
 *   lunio write PATH OFFSET LENGTH TEXT   the block starts with TEXT, then zeros
 *   lunio read PATH OFFSET LENGTH         prints the block's text (up to its first NUL)
 *   lunio info PATH                       type, size, st_blksize (and BLKSSZGET)
 *   lunio bench PATH LENGTH COUNT         COUNT writes of LENGTH bytes, then COUNT
 *                                         reads, in the LUN's first MiB; prints
 *                                         write_ops_per_s=N read_ops_per_s=N
 *                                         (bench/lun)
 *
 * Exit status 0 on success, 1 with "lunio: ...: EIO (Input/output error)"
 * on standard error when the I/O fails, 2 on bad usage. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_LEN (1u << 20)

/* one aligned buffer for the process's one I/O: nothing to free on any path */
static char buf[MAX_LEN + 1] __attribute__((aligned(4096)));

static int fail(const char *what, int e)
{
    const char *name = strerrorname_np(e);
    fprintf(stderr, "lunio: %s: %s (%s)\n", what, name ? name : "?", strerror(e));
    return 1;
}

static int number(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > max) {
        fprintf(stderr, "lunio: '%s' is not a number from 0 to %llu\n", s, max);
        return -1;
    }
    *out = v;
    return 0;
}

static int info(const char *path)
{
    int fd = open(path, O_RDWR | O_DIRECT | O_SYNC | O_CLOEXEC);
    if (fd < 0)
        return fail(path, errno);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return fail("fstat", errno);
    int ss = 0;
    if (S_ISBLK(st.st_mode) && ioctl(fd, BLKSSZGET, &ss) < 0)
        return fail("BLKSSZGET", errno);
    uint64_t size = (uint64_t)st.st_size;
    if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &size) < 0)
        return fail("BLKGETSIZE64", errno);
    printf("type=%s size=%" PRIu64 " blksize=%ld sector=%d\n",
           S_ISBLK(st.st_mode)   ? "block"
           : S_ISREG(st.st_mode) ? "file"
                                 : "other",
           size, (long)st.st_blksize, ss);
    close(fd);
    return 0;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int bench(const char *path, const char *len_s, const char *count_s)
{
    unsigned long long len, count;
    if (number(len_s, 1u << 16, &len) < 0 || number(count_s, 1000000, &count) < 0 || len == 0 || count == 0)
        return 2;
    memset(buf, 'b', len);
    int fd = open(path, O_RDWR | O_DIRECT | O_SYNC | O_CLOEXEC);
    if (fd < 0)
        return fail(path, errno);
    unsigned long long blocks = (1u << 20) / len;
    double rate[2];
    for (int wr = 1; wr >= 0; wr--) {
        double t0 = now_s();
        for (unsigned long long i = 0; i < count; i++) {
            off_t off = (off_t)((i % blocks) * len);
            ssize_t n = wr ? pwrite(fd, buf, len, off) : pread(fd, buf, len, off);
            if (n != (ssize_t)len)
                return fail(wr ? "pwrite" : "pread", n < 0 ? errno : EIO);
        }
        double dt = now_s() - t0;
        rate[wr] = dt > 0 ? (double)count / dt : 0;
    }
    printf("write_ops_per_s=%.0f read_ops_per_s=%.0f\n", rate[1], rate[0]);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "info") == 0)
        return info(argv[2]);
    if (argc == 5 && strcmp(argv[1], "bench") == 0)
        return bench(argv[2], argv[3], argv[4]);
    int wr = argc == 6 && strcmp(argv[1], "write") == 0;
    if (!wr && !(argc == 5 && strcmp(argv[1], "read") == 0)) {
        fputs("usage: lunio write PATH OFFSET LENGTH TEXT | read PATH OFFSET LENGTH | info PATH | bench PATH LENGTH COUNT\n",
              stderr);
        return 2;
    }
    unsigned long long off, len;
    if (number(argv[3], (unsigned long long)INT64_MAX, &off) < 0 || number(argv[4], MAX_LEN, &len) < 0 || len == 0)
        return 2;
    memset(buf, 0, len + 1);
    if (wr)
        memcpy(buf, argv[5], strnlen(argv[5], len));
    int fd = open(argv[2], O_RDWR | O_DIRECT | O_SYNC | O_CLOEXEC);
    if (fd < 0)
        return fail(argv[2], errno);
    ssize_t n = wr ? pwrite(fd, buf, len, (off_t)off) : pread(fd, buf, len, (off_t)off);
    if (n < 0)
        return fail(wr ? "pwrite" : "pread", errno);
    if ((unsigned long long)n != len) {
        fprintf(stderr, "lunio: %s: %zd of %llu bytes\n", wr ? "pwrite" : "pread", n, len);
        return 1;
    }
    if (!wr)
        printf("%s\n", buf);
    close(fd);
    return 0;
}
