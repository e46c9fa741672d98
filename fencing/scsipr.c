/* fencing/scsipr.c: SCSI-3 persistent reservations through libmpathpersist.
 * Every host registers its own key on the shared LUN; fencing a host
 * preempts its key, so the LUN refuses that host's writes from then on.
 * Device: address = the LUN's device path (e.g. /dev/mapper/vigil-hb),
 * options key=<our key> and victim_key=<the fenced host's key>; "off" means
 * the victim's key is no longer registered. */
#include "fencing/fence_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpath_persist.h>

uint64_t fence_scsi_key(uint32_t host_id)
{
    /* "vg" in the two high bytes, so a vigil key is told from another
     * product's; the host id below it; never 0 (0 means "no key") */
    return 0x7667000000000000ULL | ((uint64_t)host_id << 8) | 1u;
}

int fence_scsi_decode_keys(const uint8_t *list, size_t listlen, uint32_t additional_length, uint64_t *keys,
                           int maxkeys)
{
    uint32_t off;
    int n = 0, i;
    if (additional_length % 8 || additional_length > listlen)
        return -EINVAL;
    for (off = 0; off < additional_length; off += 8) {
        uint64_t k = 0;
        for (i = 0; i < 8; i++)
            k = k << 8 | list[off + i];
        if (n < maxkeys)
            keys[n] = k;
        n++;
    }
    return n < maxkeys ? n : maxkeys;
}

int fence_scsi_plan(const uint64_t *keys, int nkeys, uint64_t ours, uint64_t victim)
{
    int i, have_ours = 0, have_victim = 0;
    for (i = 0; i < nkeys; i++) {
        if (keys[i] == ours)
            have_ours = 1;
        if (keys[i] == victim)
            have_victim = 1;
    }
    if (!have_victim)
        return 0;
    if (!have_ours || ours == victim)
        return -EPERM;
    return 1;
}

int fence_scsi_parse_key(const char *s, uint64_t *key)
{
    char *end;
    unsigned long long v;
    if (!s || !*s || *s == '-')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno || *end || v == 0)
        return -EINVAL;
    *key = v;
    return 0;
}

static const char *option(const struct fence_device *d, const char *key)
{
    size_t kl = strlen(key);
    int i;
    for (i = 0; i < d->noptions; i++) {
        if (!strncmp(d->options[i], key, kl) && d->options[i][kl] == '=')
            return d->options[i] + kl + 1;
    }
    return NULL;
}

static void put_key(uint8_t *b, uint64_t k)
{
    int i;
    for (i = 7; i >= 0; i--, k >>= 8)
        b[i] = (uint8_t)k;
}

int fence_scsi_run(const struct fence_device *d, enum fence_action a, int timeout_ms,
                   enum fence_power *st, char *why, size_t whylen)
{
    struct prin_resp *resp;               /* large: not on a worker's stack */
    struct prout_param_descriptor *param;
    uint64_t ours, victim, keys[64];
    int fd, rc, n, plan;

    (void)timeout_ms; /* SCSI commands are bounded by the kernel's own timeouts */
    if (fence_scsi_parse_key(option(d, "key"), &ours) || fence_scsi_parse_key(option(d, "victim_key"), &victim)) {
        fence_setf(why, whylen, "scsi-pr %s: options key= and victim_key= (non-zero) are required", d->address);
        return -EINVAL;
    }
    if (a == FENCE_ON || a == FENCE_CYCLE) {
        fence_setf(why, whylen, "scsi-pr %s cannot power a host on: the host registers its key again when it boots",
                   d->address);
        return -EOPNOTSUPP;
    }
    fd = open(d->address, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        fence_setf(why, whylen, "scsi-pr: cannot open %s: %s", d->address, strerror(-rc));
        return rc;
    }
    resp = calloc(1, sizeof *resp);
    param = calloc(1, sizeof *param);
    if (!resp || !param) {
        free(resp);
        free(param);
        close(fd);
        fence_setf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    if (libmpathpersist_init() != 0) {
        free(resp);
        free(param);
        close(fd);
        fence_setf(why, whylen, "scsi-pr %s: libmpathpersist cannot start (is multipathd configured?)", d->address);
        return -EIO;
    }
    rc = mpath_persistent_reserve_in(fd, MPATH_PRIN_RKEY_SA, resp, 0, 0);
    if (rc != MPATH_PR_SUCCESS) {
        fence_setf(why, whylen, "scsi-pr %s: READ KEYS failed (libmpathpersist status %d)", d->address, rc);
        rc = -EIO;
        goto out;
    }
    n = fence_scsi_decode_keys(resp->prin_descriptor.prin_readkeys.key_list,
                               sizeof resp->prin_descriptor.prin_readkeys.key_list,
                               resp->prin_descriptor.prin_readkeys.additional_length, keys, 64);
    if (n < 0) {
        fence_setf(why, whylen, "scsi-pr %s: malformed READ KEYS answer", d->address);
        rc = -EIO;
        goto out;
    }
    plan = fence_scsi_plan(keys, n, ours, victim);
    if (a == FENCE_STATUS || plan == 0) {
        *st = plan == 0 ? FENCE_POWER_OFF : FENCE_POWER_ON;
        fence_setf(why, whylen, "scsi-pr %s: key 0x%llx is %sregistered", d->address, (unsigned long long)victim,
                   plan == 0 ? "not " : "");
        rc = 0;
        goto out;
    }
    if (plan < 0) {
        fence_setf(why, whylen, "scsi-pr %s: our key 0x%llx is not registered: cannot preempt", d->address,
                   (unsigned long long)ours);
        rc = -EPERM;
        goto out;
    }
    put_key(param->key, ours);
    put_key(param->sa_key, victim);
    rc = mpath_persistent_reserve_out(fd, MPATH_PROUT_PREE_AB_SA, MPATH_LU_SCOPE, MPATH_PRTPE_WE_RO, param, 0, 0);
    if (rc != MPATH_PR_SUCCESS) {
        fence_setf(why, whylen, "scsi-pr %s: PREEMPT AND ABORT of 0x%llx failed (libmpathpersist status %d)",
                   d->address, (unsigned long long)victim, rc);
        rc = -EIO;
        goto out;
    }
    *st = FENCE_POWER_OFF;
    fence_setf(why, whylen, "scsi-pr %s: key 0x%llx preempted", d->address, (unsigned long long)victim);
    rc = 0;
out:
    libmpathpersist_exit();
    free(resp);
    free(param);
    close(fd);
    return rc;
}
