/* A small stand-in for libFuzzer's main, so fuzz targets build with gcc and
 * run in `make check` under the sanitizers: every seed file is fed as is,
 * then -runs=N deterministic mutations of them (byte flips, inserts,
 * deletes, splices, interesting tokens).  A crash or sanitizer report fails
 * the test; the input that caused it is written to ./crash-input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

struct buf {
    uint8_t *p;
    size_t n;
};

static struct buf read_file(const char *path)
{
    struct buf b = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return b;
    b.p = malloc(1 << 20);
    if (b.p)
        b.n = fread(b.p, 1, 1 << 20, f);
    fclose(f);
    return b;
}

static const char *const tokens[] = {"at ", "expect ", "host ", "vm ", "set ", "end ", "cmd ", "|", ",", "=",
                                     "99999999999999999999", "0", "-1", "1ms", "2m", "4G", "partition ", "\n",
                                     "#", "\"", "running on ", "any", "all", "--evacuate", "--yes", "by ", "never "};

static size_t mutate(uint8_t *d, size_t n, size_t cap, const struct buf *corpus, int nc)
{
    int k = (int)(next_rand() % 6);
    size_t pos = n ? next_rand() % n : 0;
    switch (k) {
    case 0:
        if (n)
            d[pos] ^= (uint8_t)(1u << (next_rand() % 8));
        break;
    case 1:
        if (n < cap) {
            memmove(d + pos + 1, d + pos, n - pos);
            d[pos] = (uint8_t)next_rand();
            n++;
        }
        break;
    case 2:
        if (n) {
            size_t len = 1 + next_rand() % (n - pos);
            memmove(d + pos, d + pos + len, n - pos - len);
            n -= len;
        }
        break;
    case 3: {
        const char *t = tokens[next_rand() % (sizeof tokens / sizeof tokens[0])];
        size_t tl = strlen(t);
        if (n + tl <= cap) {
            memmove(d + pos + tl, d + pos, n - pos);
            memcpy(d + pos, t, tl);
            n += tl;
        }
        break;
    }
    case 4: {
        const struct buf *o = &corpus[next_rand() % (uint64_t)nc];
        if (o->n) {
            size_t from = next_rand() % o->n, len = 1 + next_rand() % (o->n - from);
            if (n + len <= cap) {
                memmove(d + pos + len, d + pos, n - pos);
                memcpy(d + pos, o->p + from, len);
                n += len;
            }
        }
        break;
    }
    default:
        if (n)
            d[pos] = (uint8_t)"0123456789 \n\t=|,#-"[next_rand() % 19];
        break;
    }
    return n;
}

int main(int argc, char **argv)
{
    long runs = 10000;
    int nc = 0;
    struct buf *corpus = calloc((size_t)argc + 1, sizeof *corpus);
    if (!corpus)
        return 1;
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "-runs=", 6)) {
            runs = atol(argv[i] + 6);
            continue;
        }
        struct buf b = read_file(argv[i]);
        if (b.p) {
            LLVMFuzzerTestOneInput(b.p, b.n);
            corpus[nc++] = b;
        }
    }
    if (!nc) {
        corpus[0].p = (uint8_t *)strdup("host h1 mem=1G cpus=1\nend 1\n");
        corpus[0].n = strlen((char *)corpus[0].p);
        nc = 1;
    }
    size_t cap = 1 << 16;
    uint8_t *d = malloc(cap);
    if (!d)
        return 1;
    for (long r = 0; r < runs; r++) {
        const struct buf *s = &corpus[next_rand() % (uint64_t)nc];
        size_t n = s->n < cap ? s->n : cap;
        memcpy(d, s->p, n);
        int m = 1 + (int)(next_rand() % 8);
        for (int i = 0; i < m; i++)
            n = mutate(d, n, cap, corpus, nc);
        FILE *f = fopen("crash-input", "wb");
        if (f) {
            fwrite(d, 1, n, f);
            fclose(f);
        }
        LLVMFuzzerTestOneInput(d, n);
    }
    remove("crash-input");
    printf("fuzz: %ld mutated inputs over %d seeds, no crash\n", runs, nc);
    for (int i = 0; i < nc; i++)
        free(corpus[i].p);
    free(corpus);
    free(d);
    return 0;
}
