/* A scratch directory for Check tests that write files: scratch_make() in
 * the fixture's setup, scratch_remove() in its teardown (a failed test
 * leaves its directory behind, for a look). */
#ifndef VIGIL_TESTS_SCRATCH_H
#define VIGIL_TESTS_SCRATCH_H

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char scratch[64];

static inline void scratch_make(const char *prefix)
{
    snprintf(scratch, sizeof scratch, "/tmp/%s.XXXXXX", prefix);
    ck_assert_ptr_nonnull(mkdtemp(scratch));
}

static inline void scratch_remove(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    ck_assert_int_eq(system(cmd), 0);
}

/* scratch/name; the last two results stay valid */
static inline const char *scratch_path(const char *name)
{
    static char p[2][192];
    static int k;
    k ^= 1;
    snprintf(p[k], sizeof p[k], "%s/%s", scratch, name);
    return p[k];
}

/* Up to cap bytes of the file (which must exist). */
static inline size_t scratch_slurp(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    ck_assert_msg(fd >= 0, "cannot open %s", path);
    size_t n = 0;
    ssize_t k;
    while (n < cap && (k = read(fd, buf + n, cap - n)) > 0)
        n += (size_t)k;
    close(fd);
    return n;
}

#endif
