/* Placement rules: parsing, and refusing rules that contradict each other
 * or can never hold, with the reason.  Placement itself is in sched.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ha.h"

const char *ha_rule_type_name(enum ha_rule_type t)
{
    static const char *const n[] = {"anti-affinity", "affinity", "pin"};
    return (unsigned)t < sizeof n / sizeof n[0] ? n[t] : "?";
}

int ha_db_find_rule(const struct ha_db *db, const char *name)
{
    for (int i = 0; i < db->nrules; i++)
        if (!strcmp(db->rule[i].name, name))
            return i;
    return -ENOENT;
}

static bool has_vm(const struct ha_rule *r, int v)
{
    for (int i = 0; i < r->nvms; i++)
        if (r->vm[i] == v)
            return true;
    return false;
}

static int host_of_words(const struct ha_db *db, const char *w, ha_hostset *set, char *err, size_t errlen)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", w);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int h = ha_db_find_host(db, t);
        if (h < 0) {
            snprintf(err, errlen, "unknown host '%s'", t);
            return -EINVAL;
        }
        *set |= HA_BIT(h);
    }
    return 0;
}

int ha_rule_parse(const struct ha_db *db, int argc, char **argv, struct ha_rule *out, char *err, size_t errlen)
{
    struct ha_rule r = {0};
    if (argc < 1) {
        snprintf(err, errlen, "rule needs a type: anti-affinity, affinity or pin");
        return -EINVAL;
    }
    /* a trailing strict / --strict */
    if (argc > 1 && (!strcmp(argv[argc - 1], "strict") || !strcmp(argv[argc - 1], "--strict"))) {
        r.strict = true;
        argc--;
    }
    if (!strcmp(argv[0], "anti-affinity") || !strcmp(argv[0], "affinity")) {
        r.type = argv[0][0] == 'a' && argv[0][1] == 'n' ? HA_RULE_ANTI_AFFINITY : HA_RULE_AFFINITY;
        if (argc < 4) {
            snprintf(err, errlen, "%s needs a name and at least two VMs", argv[0]);
            return -EINVAL;
        }
        if (strlen(argv[1]) >= HA_NAME_MAX || argv[1][0] == '-') {
            snprintf(err, errlen, "'%s' cannot be a rule name", argv[1]);
            return -EINVAL;
        }
        snprintf(r.name, sizeof r.name, "%s", argv[1]);
        for (int i = 2; i < argc; i++) {
            int v = ha_db_find_vm(db, argv[i]);
            if (v < 0) {
                snprintf(err, errlen, "unknown VM '%s'", argv[i]);
                return -EINVAL;
            }
            if (has_vm(&r, v)) {
                snprintf(err, errlen, "VM '%s' named twice", argv[i]);
                return -EINVAL;
            }
            if (r.nvms == HA_RULE_MAX_VMS) {
                snprintf(err, errlen, "a rule holds at most %d VMs", HA_RULE_MAX_VMS);
                return -EINVAL;
            }
            r.vm[r.nvms++] = v;
        }
    } else if (!strcmp(argv[0], "pin")) {
        r.type = HA_RULE_PIN;
        if (argc < 3) {
            snprintf(err, errlen, "pin needs a VM and at least one host");
            return -EINVAL;
        }
        int v = ha_db_find_vm(db, argv[1]);
        if (v < 0) {
            snprintf(err, errlen, "unknown VM '%s'", argv[1]);
            return -EINVAL;
        }
        r.vm[r.nvms++] = v;
        for (int i = 2; i < argc; i++)
            if (host_of_words(db, argv[i], &r.hosts, err, errlen) < 0)
                return -EINVAL;
        /* pin rules are named after their VM: one pin per VM */
        snprintf(r.name, sizeof r.name, "pin-%s", db->vm[v].name);
    } else {
        snprintf(err, errlen, "unknown rule type '%s' (anti-affinity, affinity or pin)", argv[0]);
        return -EINVAL;
    }
    *out = r;
    return 0;
}

/* Strict affinity makes groups of VMs that must share a host: union-find
 * over the strict affinity rules (plus the candidate). */
static int uf_find(int *p, int x)
{
    while (p[x] != x)
        x = p[x] = p[p[x]];
    return x;
}

static const char *vn(const struct ha_db *db, int v) { return db->vm[v].name; }

int ha_rule_check(const struct ha_db *db, const struct ha_rule *r, char *err, size_t errlen)
{
    if (!r->name[0] || ha_db_find_rule(db, r->name) >= 0) {
        snprintf(err, errlen, "a rule named '%s' exists already%s", r->name,
                 r->type == HA_RULE_PIN ? " (one pin per VM: delete it first)" : "");
        return -EINVAL;
    }
    for (int i = 0; i < r->nvms; i++)
        if (r->vm[i] < 0 || r->vm[i] >= db->nvms) {
            snprintf(err, errlen, "rule names an unknown VM");
            return -EINVAL;
        }
    if (r->type == HA_RULE_PIN) {
        if (r->nvms != 1 || !r->hosts) {
            snprintf(err, errlen, "a pin rule takes one VM and at least one host");
            return -EINVAL;
        }
        if (db->nhosts < HA_MAX_HOSTS && (r->hosts >> db->nhosts)) {
            snprintf(err, errlen, "pin rule '%s' names a host the pool does not have", r->name);
            return -EINVAL;
        }
    } else if (r->nvms < 2) {
        snprintf(err, errlen, "an %s rule needs at least two VMs", ha_rule_type_name(r->type));
        return -EINVAL;
    }
    int nhosts = 0;
    for (int h = 0; h < db->nhosts; h++)
        nhosts += db->host[h].joined;
    if (r->type == HA_RULE_ANTI_AFFINITY && r->strict && r->nvms > nhosts) {
        snprintf(err, errlen, "strict anti-affinity '%s' needs %d hosts; the pool has %d", r->name, r->nvms, nhosts);
        return -EINVAL;
    }

    /* Build the picture with the candidate added: strict affinity groups,
     * and the hosts each VM is strictly pinned to. */
    int n = db->nvms;
    int *parent = malloc((size_t)(n > 0 ? n : 1) * sizeof *parent);
    ha_hostset *allowed = malloc((size_t)(n > 0 ? n : 1) * sizeof *allowed);
    int rc = 0;
    if (!parent || !allowed) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    for (int v = 0; v < n; v++) {
        parent[v] = v;
        allowed[v] = ~(ha_hostset)0;
    }
    for (int i = 0; i <= db->nrules; i++) {
        const struct ha_rule *x = i < db->nrules ? &db->rule[i] : r;
        if (!x->strict)
            continue;
        if (x->type == HA_RULE_AFFINITY)
            for (int k = 1; k < x->nvms; k++)
                parent[uf_find(parent, x->vm[k])] = uf_find(parent, x->vm[0]);
        if (x->type == HA_RULE_PIN)
            allowed[x->vm[0]] &= x->hosts;
    }
    /* every strict affinity group needs one host all its members may use;
     * each member may then only use those (its group's pins bind it too) */
    ha_hostset *group_allowed = malloc((size_t)(n > 0 ? n : 1) * sizeof *group_allowed);
    if (!group_allowed) {
        rc = -ENOMEM;
        goto out;
    }
    for (int v = 0; v < n; v++)
        group_allowed[v] = ~(ha_hostset)0;
    for (int v = 0; v < n; v++)
        group_allowed[uf_find(parent, v)] &= allowed[v];
    for (int v = 0; v < n; v++)
        allowed[v] = group_allowed[uf_find(parent, v)];
    free(group_allowed);
    for (int v = 0; v < n; v++) {
        ha_hostset common = allowed[v];
        if (!common) {
            snprintf(err, errlen, "contradiction: %s must share a host with its strict affinity group, "
                                  "but their strict pins have no host in common", vn(db, v));
            rc = -EINVAL;
            goto out;
        }
    }
    /* an anti-affinity pair (strict: never; soft with a strict other side:
     * never satisfiable) inside one strict affinity group */
    for (int i = 0; i <= db->nrules; i++) {
        const struct ha_rule *x = i < db->nrules ? &db->rule[i] : r;
        if (x->type != HA_RULE_ANTI_AFFINITY)
            continue;
        for (int a = 0; a < x->nvms; a++)
            for (int b = a + 1; b < x->nvms; b++) {
                int va = x->vm[a], vb = x->vm[b];
                if (uf_find(parent, va) == uf_find(parent, vb)) {
                    snprintf(err, errlen, "contradiction: %s and %s must share a host (strict affinity) and stay "
                                          "apart (%s anti-affinity '%s')",
                             vn(db, va), vn(db, vb), x->strict ? "strict" : "soft", x->name);
                    rc = -EINVAL;
                    goto out;
                }
            }
        /* pigeonhole: more members than the hosts they are all pinned within */
        if (x->strict)
            for (int a = 0; a < x->nvms; a++) {
                ha_hostset s = allowed[x->vm[a]] & ha_db_joined(db);
                int inside = 0;
                for (int b = 0; b < x->nvms; b++)
                    inside += (allowed[x->vm[b]] & ha_db_joined(db) & ~s) == 0;
                if (inside > ha_popcount(s)) {
                    snprintf(err, errlen, "contradiction: %d VMs of strict anti-affinity '%s' are strictly pinned "
                                          "within %d host(s), so they cannot all stay apart",
                             inside, x->name, ha_popcount(s));
                    rc = -EINVAL;
                    goto out;
                }
            }
    }
    /* a soft affinity pair that a strict anti-affinity keeps apart */
    for (int i = 0; i <= db->nrules; i++) {
        const struct ha_rule *x = i < db->nrules ? &db->rule[i] : r;
        if (x->type != HA_RULE_AFFINITY || x->strict)
            continue;
        for (int j = 0; j <= db->nrules; j++) {
            const struct ha_rule *y = j < db->nrules ? &db->rule[j] : r;
            if (y->type != HA_RULE_ANTI_AFFINITY || !y->strict || (x != r && y != r))
                continue;
            int common = 0, first = -1, second = -1;
            for (int k = 0; k < x->nvms; k++)
                if (has_vm(y, x->vm[k])) {
                    common++;
                    if (first < 0)
                        first = x->vm[k];
                    else if (second < 0)
                        second = x->vm[k];
                }
            if (common >= 2) {
                snprintf(err, errlen, "contradiction: %s and %s are to share a host (affinity '%s') but must stay "
                                      "apart (strict anti-affinity '%s')",
                         vn(db, first), vn(db, second), x->name, y->name);
                rc = -EINVAL;
            goto out;
            }
        }
    }
out:
    free(parent);
    free(allowed);
    return rc;
}

bool ha_after_cycle(const struct ha_db *db, int a, int b)
{
    /* follow b's after= chain; reaching a closes a loop */
    for (int v = b, steps = 0; v >= 0 && v < db->nvms && steps <= db->nvms; v = db->vm[v].after1 - 1, steps++)
        if (v == a)
            return true;
    return false;
}
