/* The replicated pool database.  Every member applies the same ordered
 * stream of changes with ha_db_apply(); nothing else writes it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "ha.h"

void ha_db_init(struct ha_db *db)
{
    memset(db, 0, sizeof *db);
    ha_settings_default(&db->set);
    db->preferred_master = HA_NO_HOST;
    db->master = HA_NO_HOST;
}

void ha_db_free(struct ha_db *db)
{
    for (int i = 0; i < db->nvms; i++)
        free(db->vm[i].xml);
    free(db->vm);
    free(db->rule);
    for (int i = 0; i < HA_MAX_HOSTS; i++) {
        free(db->fence[i]);
        db->fence[i] = NULL;
    }
    db->vm = NULL;
    db->rule = NULL;
    db->nvms = 0;
    db->nrules = 0;
}

int ha_db_find_host(const struct ha_db *db, const char *name)
{
    for (int i = 0; i < db->nhosts; i++)
        if (!strcmp(db->host[i].name, name))
            return i;
    return -ENOENT;
}

int ha_db_find_vm(const struct ha_db *db, const char *name)
{
    for (int i = 0; i < db->nvms; i++)
        if (!strcmp(db->vm[i].name, name))
            return i;
    return -ENOENT;
}

int ha_db_add_host(struct ha_db *db, const struct ha_db_host *h)
{
    if (ha_db_find_host(db, h->name) >= 0)
        return -EEXIST;
    if (db->nhosts >= HA_MAX_HOSTS)
        return -ENOSPC;
    db->host[db->nhosts] = *h;
    return db->nhosts++;
}

bool ha_vm_xml_ok(const char *xml, size_t len)
{
    return xml && len >= 1 && len <= HA_VM_XML_MAX && !memchr(xml, 0, len);
}

/* A stored copy of a blob ha_vm_xml_ok accepted: its bytes and a NUL. */
static char *xml_dup(const char *xml, size_t len)
{
    char *p = malloc(len + 1);
    if (p) {
        memcpy(p, xml, len);
        p[len] = 0;
    }
    return p;
}

int ha_db_add_vm(struct ha_db *db, const struct ha_db_vm *v)
{
    if (ha_db_find_vm(db, v->name) >= 0)
        return -EEXIST;
    if (db->nvms >= 1000000)
        return -ENOSPC;
    if ((v->xml || v->xml_len) && !ha_vm_xml_ok(v->xml, v->xml_len))
        return -EINVAL;
    char *xml = v->xml ? xml_dup(v->xml, v->xml_len) : NULL;
    if (v->xml && !xml)
        return -ENOMEM;
    /* grow by doubling; a power of two count means the array is full */
    if ((db->nvms & (db->nvms - 1)) == 0) {
        size_t cap = db->nvms ? (size_t)db->nvms * 2 : 16;
        struct ha_db_vm *nv = realloc(db->vm, cap * sizeof *nv);
        if (!nv) {
            free(xml);
            return -ENOMEM;
        }
        db->vm = nv;
    }
    db->vm[db->nvms] = *v;
    db->vm[db->nvms].xml = xml;
    db->vm[db->nvms].migrating_to = HA_NO_HOST;
    return db->nvms++;
}

bool ha_name_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= '0' && s[n] <= '9') ||
              s[n] == '.' || s[n] == '_' || s[n] == '-') || n >= HA_NAME_MAX - 1)
            return false;
    return n > 0;
}

int ha_db_copy(struct ha_db *dst, const struct ha_db *src)
{
    *dst = *src;
    dst->vm = NULL;
    dst->rule = NULL;
    dst->nvms = 0;
    dst->nrules = 0;
    memset(dst->fence, 0, sizeof dst->fence);
    for (int i = 0; i < HA_MAX_HOSTS; i++)
        if (src->fence[i]) {
            dst->fence[i] = malloc(sizeof *dst->fence[i]);
            if (!dst->fence[i]) {
                ha_db_free(dst);
                return -ENOMEM;
            }
            *dst->fence[i] = *src->fence[i];
        }
    for (int i = 0; i < src->nvms; i++) {
        /* through add_vm so the capacity rule (power-of-two growth) holds */
        struct ha_db_vm v = src->vm[i];
        int r = ha_db_add_vm(dst, &v);
        if (r < 0) {
            ha_db_free(dst);
            return r;
        }
        dst->vm[r].migrating_to = src->vm[i].migrating_to;
    }
    if (src->nrules) {
        dst->rule = malloc((size_t)src->nrules * sizeof *dst->rule);
        if (!dst->rule) {
            ha_db_free(dst);
            return -ENOMEM;
        }
        memcpy(dst->rule, src->rule, (size_t)src->nrules * sizeof *dst->rule);
        dst->nrules = src->nrules;
    }
    return 0;
}

int ha_token_check(const struct ha_db *db, const uint8_t hash[32], int64_t now)
{
    for (int i = 0; i < db->ntokens; i++)
        if (!memcmp(db->token[i].hash, hash, 32))
            return db->token[i].used ? -EALREADY : db->token[i].expires < now ? -ETIME : 0;
    return -ENOENT;
}

bool ha_change_allowed(const struct ha_db *db, int sender, ha_hostset view, const struct ha_change *c)
{
    if (sender < 0 || sender >= db->nhosts)
        return false;
    if (db->set.heartbeat_disk)
        return true; /* the disk lease orders masters: at most one commits (core.c) */
    bool master_here = db->master != HA_NO_HOST && (view & HA_BIT(db->master)) && db->host[db->master].joined;
    ha_hostset joined = ha_db_joined(db);
    bool majority = 2 * ha_popcount(view & joined) > ha_popcount(joined);
    if (c->type == HA_CHG_MASTER) /* a new epoch needs a majority: two can never overlap */
        return majority && (sender == db->master || (!master_here && c->host == sender && (view & HA_BIT(sender))));
    return sender == db->master && master_here;
}

static bool str_ok(const char *s, size_t cap) { return memchr(s, 0, cap) != NULL; }

ha_hostset ha_db_joined(const struct ha_db *db)
{
    ha_hostset s = 0;
    for (int i = 0; i < db->nhosts; i++)
        if (db->host[i].joined)
            s |= HA_BIT(i);
    return s;
}

int ha_db_apply(struct ha_db *db, const struct ha_change *c)
{
    bool host_ok = c->host >= 0 && c->host < db->nhosts;
    bool vm_ok = c->vm >= 0 && c->vm < db->nvms;
    struct ha_db_host *h = host_ok ? &db->host[c->host] : NULL;
    struct ha_db_vm *v = vm_ok ? &db->vm[c->vm] : NULL;

    switch (c->type) {
    case HA_CHG_HOST_JOIN:
        if (!h)
            return -EINVAL;
        h->joined = true;
        h->fenced = false;
        h->leaving = false;
        h->maintenance = false;
        break;
    case HA_CHG_HOST_LEAVE:
        if (!h)
            return -EINVAL;
        h->joined = false;
        h->leaving = false;
        h->maintenance = false;
        h->fenced = false;
        if (db->preferred_master == c->host)
            db->preferred_master = HA_NO_HOST;
        if (db->master == c->host)
            db->master = HA_NO_HOST; /* its successor takes over by a MASTER change */
        for (int i = 0; i < db->nvms; i++) {
            if (db->vm[i].host == c->host)
                db->vm[i].host = HA_NO_HOST;
            if (db->vm[i].migrating_to == c->host)
                db->vm[i].migrating_to = HA_NO_HOST;
        }
        break;
    case HA_CHG_HOST_MAINT:
        if (!h)
            return -EINVAL;
        h->maintenance = c->arg != 0;
        break;
    case HA_CHG_HOST_LEAVING:
        if (!h)
            return -EINVAL;
        h->leaving = c->arg != 0;
        break;
    case HA_CHG_HOST_FENCED:
        if (!h)
            return -EINVAL;
        h->fenced = c->arg != 0;
        break;
    case HA_CHG_VM_PROTECT:
        if (!v || c->priority < 1 || c->priority > 5 || c->after1 < 0 || c->after1 > db->nvms ||
            c->after1 == c->vm + 1 || (c->after1 && ha_after_cycle(db, c->vm, c->after1 - 1)))
            return -EINVAL;
        v->protect = c->protect;
        v->priority = c->priority;
        v->order = c->order;
        v->after1 = c->after1;
        break;
    case HA_CHG_RULE_ADD: {
        char err[HA_REASON_MAX];
        if (ha_rule_check(db, &c->rule, err, sizeof err) < 0)
            return -EINVAL;
        struct ha_rule *nr = realloc(db->rule, (size_t)(db->nrules + 1) * sizeof *nr);
        if (!nr)
            return -ENOMEM;
        db->rule = nr;
        db->rule[db->nrules++] = c->rule;
        break;
    }
    case HA_CHG_RULE_DEL:
        if (c->arg < 0 || c->arg >= db->nrules)
            return -EINVAL;
        memmove(&db->rule[c->arg], &db->rule[c->arg + 1], (size_t)(db->nrules - c->arg - 1) * sizeof *db->rule);
        db->nrules--;
        break;
    case HA_CHG_VM_WANT:
        if (!v)
            return -EINVAL;
        v->want_running = c->arg != 0;
        break;
    case HA_CHG_VM_PLACE:
        if (!v || (c->host != HA_NO_HOST && !h))
            return -EINVAL;
        v->host = c->host;
        v->migrating_to = HA_NO_HOST;
        break;
    case HA_CHG_VM_MIGRATING:
        if (!v || !h || c->arg < 0 || c->arg >= db->nhosts || c->arg == c->host)
            return -EINVAL;
        v->host = c->host;
        v->migrating_to = c->arg;
        break;
    case HA_CHG_PREFERRED_MASTER:
        if (c->host != HA_NO_HOST && !h)
            return -EINVAL;
        db->preferred_master = c->host;
        break;
    case HA_CHG_MASTER:
        if (!h || !h->joined)
            return -EINVAL;
        db->master = c->host;
        db->master_epoch++;
        break;
    case HA_CHG_POOL_CREATE:
        if (db->pool_name[0] || !str_ok(c->name, sizeof c->name) || !ha_name_valid(c->name) ||
            !str_ok(c->text, sizeof db->pool_uuid) || !c->text[0])
            return -EINVAL;
        snprintf(db->pool_name, sizeof db->pool_name, "%s", c->name);
        snprintf(db->pool_uuid, sizeof db->pool_uuid, "%s", c->text);
        break;
    case HA_CHG_HOST_ADD: {
        if (!str_ok(c->name, sizeof c->name) || !ha_name_valid(c->name) || !str_ok(c->text, sizeof h->addr) ||
            c->cpus < 0 || c->arg <= 0)
            return -EINVAL;
        int i = ha_db_find_host(db, c->name);
        for (int o = 0; o < db->nhosts; o++)
            if (o != i && db->host[o].joined && (db->host[o].nodeid == (uint32_t)c->arg ||
                                                  (c->text[0] && !strcmp(db->host[o].addr, c->text))))
                return -EINVAL; /* node id or address held by another member */
        if (i >= 0 && db->host[i].joined)
            return -EINVAL;
        if (i < 0) {
            struct ha_db_host nh = {0};
            snprintf(nh.name, sizeof nh.name, "%s", c->name);
            i = ha_db_add_host(db, &nh);
            if (i < 0)
                return i;
        }
        h = &db->host[i];
        snprintf(h->addr, sizeof h->addr, "%s", c->text);
        h->nodeid = (uint32_t)c->arg;
        h->mem_mb = c->mem_mb;
        h->cpus = c->cpus;
        h->joined = true;
        h->fenced = h->leaving = h->maintenance = false;
        break;
    }
    case HA_CHG_VM_ADD: {
        if (!str_ok(c->name, sizeof c->name) || !ha_name_valid(c->name) || c->cpus < 1 || c->mem_mb < 1 ||
            ((c->xml || c->xml_len) && !ha_vm_xml_ok(c->xml, c->xml_len)))
            return -EINVAL;
        struct ha_db_vm nv = {.mem_mb = c->mem_mb, .cpus = c->cpus, .priority = 3, .host = HA_NO_HOST};
        snprintf(nv.name, sizeof nv.name, "%s", c->name);
        nv.xml = (char *)(uintptr_t)c->xml; /* ha_db_add_vm copies it */
        nv.xml_len = c->xml_len;
        int r = ha_db_add_vm(db, &nv);
        if (r < 0)
            return r == -ENOMEM ? r : -EINVAL;
        break;
    }
    case HA_CHG_VM_XML: {
        if (!v || c->cpus < 1 || c->mem_mb < 1 || !ha_vm_xml_ok(c->xml, c->xml_len))
            return -EINVAL;
        char *x = xml_dup(c->xml, c->xml_len);
        if (!x)
            return -ENOMEM;
        free(v->xml);
        v->xml = x;
        v->xml_len = c->xml_len;
        v->mem_mb = c->mem_mb;
        v->cpus = c->cpus;
        break;
    }
    case HA_CHG_TOKEN_ADD: {
        /* Used tokens go, and so do those that expired 30 days (the longest
         * token life) before this one expires: they are surely dead, and
         * the rule needs no clock, so every member drops the same ones. */
        for (int i = 0; i < db->ntokens; i++)
            if (!memcmp(db->token[i].hash, c->blob, 32))
                return -EINVAL;
        int n = 0;
        for (int i = 0; i < db->ntokens; i++)
            if (!db->token[i].used && db->token[i].expires >= c->when - 30 * 86400)
                db->token[n++] = db->token[i];
        db->ntokens = n;
        if (db->ntokens == HA_MAX_TOKENS) /* the oldest one goes */
            memmove(&db->token[0], &db->token[1], (size_t)--db->ntokens * sizeof db->token[0]);
        db->token[db->ntokens] = (struct ha_token){.expires = c->when};
        memcpy(db->token[db->ntokens++].hash, c->blob, 32);
        break;
    }
    case HA_CHG_TOKEN_USE: {
        int i = 0;
        while (i < db->ntokens && memcmp(db->token[i].hash, c->blob, 32))
            i++;
        if (i == db->ntokens || db->token[i].used)
            return -EINVAL;
        db->token[i].used = true;
        break;
    }
    case HA_CHG_HOST_FACTS:
        if (!h || !h->joined || c->cpus < 1)
            return -EINVAL;
        h->mem_mb = c->mem_mb;
        h->cpus = c->cpus;
        break;
    case HA_CHG_FENCE_SET: {
        char err[HA_REASON_MAX];
        struct ha_fence_topo *t = h ? db->fence[c->host] : NULL;
        int nlevels = t ? t->nlevels : 0;
        /* levels and devices stay contiguous: replace one, or add the next */
        if (!h || c->fence_level < 1 || c->fence_level > HA_FENCE_LEVELS || c->fence_level > nlevels + 1 ||
            c->fence_index < 0 || c->fence_index >= HA_FENCE_DEVS ||
            c->fence_index > (c->fence_level <= nlevels ? t->level[c->fence_level - 1].ndevs : 0) ||
            ha_fence_dev_check(&c->dev, err, sizeof err) < 0 ||
            ha_fence_place_check(t, c->fence_level, c->fence_index, c->dev.type, err, sizeof err) < 0)
            return -EINVAL;
        if (!t) {
            t = calloc(1, sizeof *t);
            if (!t)
                return -ENOMEM;
            db->fence[c->host] = t;
        }
        struct ha_fence_level *l = &t->level[c->fence_level - 1];
        if (c->fence_level > t->nlevels) {
            memset(l, 0, sizeof *l);
            t->nlevels = c->fence_level;
        }
        /* through snprintf: the stored copy holds nothing after its NULs */
        struct ha_fence_dev *d = &l->dev[c->fence_index];
        memset(d, 0, sizeof *d);
        d->type = c->dev.type;
        snprintf(d->addr, sizeof d->addr, "%s", c->dev.addr);
        d->port = c->dev.port;
        snprintf(d->user, sizeof d->user, "%s", c->dev.user);
        snprintf(d->password, sizeof d->password, "%s", c->dev.password);
        d->cipher = c->dev.cipher;
        snprintf(d->agent, sizeof d->agent, "%s", c->dev.agent);
        d->nopts = c->dev.nopts;
        for (int i = 0; i < c->dev.nopts; i++)
            snprintf(d->opt[i], sizeof d->opt[i], "%s", c->dev.opt[i]);
        d->timeout_ms = c->dev.timeout_ms;
        d->retries = c->dev.retries;
        if (c->fence_index == l->ndevs)
            l->ndevs++;
        h->fence_ipmi = ha_fence_topo_has_devices(t);
        break;
    }
    case HA_CHG_FENCE_CLEAR: {
        struct ha_fence_topo *t = h ? db->fence[c->host] : NULL;
        /* only the highest level goes alone: the others keep their numbers */
        if (!h || !t || (c->fence_level != 0 && c->fence_level != t->nlevels) || c->fence_index)
            return -EINVAL;
        if (t && c->fence_level && t->nlevels > 1) {
            memset(&t->level[--t->nlevels], 0, sizeof t->level[0]);
        } else {
            free(t);
            db->fence[c->host] = NULL;
        }
        h->fence_ipmi = ha_fence_topo_has_devices(db->fence[c->host]);
        break;
    }
    case HA_CHG_SETTING: {
        char err[HA_REASON_MAX];
        struct ha_settings s = db->set;
        if (!str_ok(c->name, sizeof c->name) || !str_ok(c->text, sizeof c->text) ||
            ha_settings_set(&s, c->name, c->text, err, sizeof err) < 0)
            return -EINVAL;
        db->set = s;
        break;
    }
    default:
        return -EINVAL;
    }
    db->version++;
    return 0;
}
