/* The replicated pool database.  Every member applies the same ordered
 * stream of changes with ha_db_apply(); nothing else writes it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ha.h"

void ha_db_init(struct ha_db *db)
{
    memset(db, 0, sizeof *db);
    ha_settings_default(&db->set);
    db->preferred_master = HA_NO_HOST;
}

void ha_db_free(struct ha_db *db)
{
    free(db->vm);
    free(db->rule);
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

int ha_db_add_vm(struct ha_db *db, const struct ha_db_vm *v)
{
    if (ha_db_find_vm(db, v->name) >= 0)
        return -EEXIST;
    if (db->nvms >= 1000000)
        return -ENOSPC;
    /* grow by doubling; a power of two count means the array is full */
    if ((db->nvms & (db->nvms - 1)) == 0) {
        size_t cap = db->nvms ? (size_t)db->nvms * 2 : 16;
        struct ha_db_vm *nv = realloc(db->vm, cap * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        db->vm = nv;
    }
    db->vm[db->nvms] = *v;
    db->vm[db->nvms].migrating_to = HA_NO_HOST;
    return db->nvms++;
}

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
    default:
        return -EINVAL;
    }
    db->version++;
    return 0;
}
