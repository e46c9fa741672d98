/* Fence-device configuration: the shape a stored device must have.  The
 * devices themselves (IPMI, fence agents, ...) live in fencing/; this file
 * only judges what the pool database may hold, so that every member and
 * every decoder agree on it. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "ha.h"

static const char *const type_names[] = {"ipmi", "agent", "disk", "scsi-pr"};

const char *ha_fence_type_name(enum ha_fence_type t)
{
    return (unsigned)t <= HA_FENCE_TYPE_LAST ? type_names[t] : "?";
}

int ha_fence_type_parse(const char *s, enum ha_fence_type *out)
{
    for (unsigned i = 0; i <= HA_FENCE_TYPE_LAST; i++)
        if (!strcmp(s, type_names[i])) {
            *out = (enum ha_fence_type)i;
            return 0;
        }
    return -EINVAL;
}


/* Terminated within its field and free of control bytes. */
static bool printable(const char *s, size_t field)
{
    const char *end = memchr(s, 0, field);
    if (!end)
        return false;
    for (; s < end; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

static bool all_of(const char *s, const char *extra)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr(extra, *s)))
            return false;
    return true;
}

int ha_fence_dev_check(const struct ha_fence_dev *d, char *err, size_t errlen)
{
    if ((unsigned)d->type > HA_FENCE_TYPE_LAST)
        return errf(err, errlen, -EINVAL, "unknown device type");
    const char *t = ha_fence_type_name(d->type);
    if (!printable(d->addr, sizeof d->addr) || !printable(d->user, sizeof d->user) ||
        !printable(d->password, sizeof d->password) || !printable(d->agent, sizeof d->agent))
        return errf(err, errlen, -EINVAL, "%s device: a field is too long or holds control characters", t);
    /* host names, IPv4 and IPv6 addresses (with a zone), nothing a shell or
     * a command line could take for something else */
    if (!all_of(d->addr, ".-_:[]%"))
        return errf(err, errlen, -EINVAL, "%s device: address '%s' is not a host name or an IP address", t, d->addr);
    if (d->addr[0] == '-')
        return errf(err, errlen, -EINVAL, "%s device: address '%s' starts with '-'", t, d->addr);
    if (d->port < 0 || d->port > 65535)
        return errf(err, errlen, -EINVAL, "%s device: the port is not in 1..65535", t);
    if (d->timeout_ms < 100 || d->timeout_ms > 600000)
        return errf(err, errlen, -EINVAL, "%s device: the timeout is not in 0.1 s..600 s", t);
    if (d->retries < 0 || d->retries > 10)
        return errf(err, errlen, -EINVAL, "%s device: retries is not in 0..10", t);
    if (d->nopts < 0 || d->nopts > HA_FENCE_OPTS)
        return errf(err, errlen, -EINVAL, "%s device: more than 16 options", t);
    for (int i = 0; i < d->nopts; i++) {
        const char *o = d->opt[i];
        if (!printable(o, sizeof d->opt[i]))
            return errf(err, errlen, -EINVAL, "%s device: an option is longer than 63 bytes or holds control characters", t);
        const char *eq = strchr(o, '=');
        char key[HA_FENCE_STR];
        snprintf(key, sizeof key, "%.*s", eq ? (int)(eq - o) : (int)strlen(o), o);
        if (!eq || !key[0] || !all_of(key, "_-") || key[0] == '-')
            return errf(err, errlen, -EINVAL, "%s device: option '%s' is not key=value (key: letters, digits, _ and -)", t,
                       o);
        if (!strcmp(key, "password") || !strcmp(key, "passwd"))
            return errf(err, errlen, -EINVAL, "%s device: a password is not an option (it would be shown): give it in a file "
                                    "with --password-file", t);
        for (int j = 0; j < i; j++)
            if (!strncmp(d->opt[j], o, strlen(key) + 1))
                return errf(err, errlen, -EINVAL, "%s device: option %s is given twice", t, key);
    }
    bool has_addr = d->addr[0], has_user = d->user[0], has_pw = d->password[0], has_agent = d->agent[0];
    switch (d->type) {
    case HA_FENCE_IPMI:
        if (!has_addr || !has_user || !has_pw)
            return errf(err, errlen, -EINVAL, "ipmi device: it needs an address, a user and a password");
        if (!d->port)
            return errf(err, errlen, -EINVAL, "ipmi device: it needs a port (623 is the usual one)");
        if (d->cipher < 1 || d->cipher > 17)
            return errf(err, errlen, -EINVAL, "ipmi device: cipher suite is not in 1..17 (0 has no authentication)");
        if (strlen(d->user) > 16 || strlen(d->password) > 20)
            return errf(err, errlen, -EINVAL, "ipmi device: IPMI 2.0 allows a user of at most 16 bytes and a password of at "
                                    "most 20 (use --type agent for a BMC that takes longer ones)");
        if (has_agent || d->nopts)
            return errf(err, errlen, -EINVAL, "ipmi device: it takes no agent and no options");
        break;
    case HA_FENCE_AGENT:
        if (!has_agent || strncmp(d->agent, "fence_", 6) || !d->agent[6] || !all_of(d->agent, "_-"))
            return errf(err, errlen, -EINVAL, "agent device: agent '%s' is not a fence agent's name (fence_...)", d->agent);
        if (d->cipher)
            return errf(err, errlen, -EINVAL, "agent device: a cipher suite is for ipmi devices");
        if (has_pw && !has_user)
            return errf(err, errlen, -EINVAL, "agent device: a password without a user");
        break;
    case HA_FENCE_DISK:
    case HA_FENCE_SCSI_PR:
        if (has_addr || has_user || has_pw || has_agent || d->port || d->cipher)
            return errf(err, errlen, -EINVAL, "%s device: it takes no address, port, user, password, cipher or agent", t);
        if (d->type == HA_FENCE_DISK && d->nopts)
            return errf(err, errlen, -EINVAL, "disk device: it takes no options");
        break;
    }
    return 0;
}

static bool level_is_disk(const struct ha_fence_level *l)
{
    return l->ndevs > 0 && l->dev[0].type == HA_FENCE_DISK;
}

bool ha_fence_topo_has_devices(const struct ha_fence_topo *t)
{
    for (int l = 0; t && l < t->nlevels; l++)
        if (!level_is_disk(&t->level[l]))
            return true;
    return false;
}

/* The poison pill confirms only by the target's acknowledgement or by
 * msgwait elapsing, and the core runs it after the devices that power a host
 * off (ha/fence.c): a disk device is therefore alone in the last level. */
int ha_fence_place_check(const struct ha_fence_topo *t, int level, int index, enum ha_fence_type type, char *err,
                         size_t errlen)
{
    int nlevels = t ? t->nlevels : 0;
    bool replacing_only = level <= nlevels && t->level[level - 1].ndevs == 1 && index == 0;
    if (type == HA_FENCE_DISK) {
        if (level < nlevels)
            return errf(err, errlen, -EINVAL,
                        "a disk device is the last level (the poison pill runs after the devices that power a host "
                        "off): level %d is followed by %d more",
                        level, nlevels - level);
        if (index > 0 || (level <= nlevels && !replacing_only))
            return errf(err, errlen, -EINVAL,
                        "a disk device is alone in its level (the heartbeat disk confirms by itself): level %d has "
                        "other devices",
                        level);
        return 0;
    }
    for (int l = 0; l < nlevels && l < level - 1; l++)
        if (level_is_disk(&t->level[l]))
            return errf(err, errlen, -EINVAL,
                        "level %d is the disk (the poison pill), which stays the last level: clear it first "
                        "(fence-device clear --level %d)",
                        l + 1, l + 1);
    if (level <= nlevels && level_is_disk(&t->level[level - 1]) && !replacing_only)
        return errf(err, errlen, -EINVAL, "level %d is the disk, which is alone in its level", level);
    return 0;
}
