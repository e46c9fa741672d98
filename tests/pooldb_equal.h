/* Field-by-field equality of databases and changes, for the pooldb unit
 * test and fuzzer.  Strings compare as strings (bytes after the NUL do not
 * count), a rule's VM list only up to nvms: the meaning, not the memory. */
#ifndef VIGIL_TESTS_POOLDB_EQUAL_H
#define VIGIL_TESTS_POOLDB_EQUAL_H

#include <stdio.h>
#include <string.h>

#include "ha/ha.h"

/* Each returns NULL when equal, else the name of the first field that
 * differs (in a static buffer for indexed fields). */

static inline const char *rule_diff(const struct ha_rule *a, const struct ha_rule *b)
{
    if (strcmp(a->name, b->name))
        return "rule.name";
    if (a->type != b->type)
        return "rule.type";
    if (a->strict != b->strict)
        return "rule.strict";
    if (a->nvms != b->nvms)
        return "rule.nvms";
    for (int i = 0; i < a->nvms && i < HA_RULE_MAX_VMS; i++)
        if (a->vm[i] != b->vm[i])
            return "rule.vm";
    if (a->hosts != b->hosts)
        return "rule.hosts";
    return NULL;
}

static inline const char *dev_diff(const struct ha_fence_dev *a, const struct ha_fence_dev *b)
{
    if (a->type != b->type || a->port != b->port || a->cipher != b->cipher || a->timeout_ms != b->timeout_ms ||
        a->retries != b->retries || a->nopts != b->nopts)
        return "dev";
    if (strcmp(a->addr, b->addr) || strcmp(a->user, b->user) || strcmp(a->password, b->password) ||
        strcmp(a->agent, b->agent))
        return "dev strings";
    for (int i = 0; i < a->nopts && i < HA_FENCE_OPTS; i++)
        if (strcmp(a->opt[i], b->opt[i]))
            return "dev.opt";
    return NULL;
}

static inline const char *topo_diff(const struct ha_fence_topo *a, const struct ha_fence_topo *b)
{
    if (!a || !b)
        return a == b ? NULL : "fence topology present";
    if (a->nlevels != b->nlevels)
        return "fence nlevels";
    for (int l = 0; l < a->nlevels && l < HA_FENCE_LEVELS; l++) {
        if (a->level[l].ndevs != b->level[l].ndevs)
            return "fence ndevs";
        for (int k = 0; k < a->level[l].ndevs && k < HA_FENCE_DEVS; k++)
            if (dev_diff(&a->level[l].dev[k], &b->level[l].dev[k]))
                return "fence device";
    }
    return NULL;
}

static inline const char *settings_diff(const struct ha_settings *a, const struct ha_settings *b)
{
#define F(x)                                                                                                      \
    if (a->x != b->x)                                                                                             \
        return "set." #x;
    F(token_timeout) F(disk_interval) F(disk_timeout) F(msgwait) F(fence_time) F(fence_timeout) F(vm_start)
    F(vm_stop) F(migrate_time) F(op_timeout) F(recovery_bound) F(evacuate_concurrency) F(max_restart) F(watchdog)
    F(failures_to_tolerate) F(balance_interval) F(heartbeat_disk)
#undef F
    if (memcmp(&a->cpu_overcommit, &b->cpu_overcommit, sizeof a->cpu_overcommit))
        return "set.cpu_overcommit";
    return NULL;
}

static inline const char *db_diff(const struct ha_db *a, const struct ha_db *b)
{
    static char buf[96];
    const char *d;
    if (a->version != b->version)
        return "version";
    if (strcmp(a->pool_name, b->pool_name))
        return "pool_name";
    if (strcmp(a->pool_uuid, b->pool_uuid))
        return "pool_uuid";
    if ((d = settings_diff(&a->set, &b->set)))
        return d;
    if (a->preferred_master != b->preferred_master)
        return "preferred_master";
    if (a->master != b->master || a->master_epoch != b->master_epoch)
        return "master";
    if (a->ntokens != b->ntokens)
        return "ntokens";
    for (int i = 0; i < a->ntokens; i++)
        if (memcmp(a->token[i].hash, b->token[i].hash, 32) || a->token[i].expires != b->token[i].expires ||
            a->token[i].used != b->token[i].used) {
            snprintf(buf, sizeof buf, "token[%d]", i);
            return buf;
        }
    if (a->nhosts != b->nhosts)
        return "nhosts";
    for (int i = 0; i < a->nhosts; i++) {
        const struct ha_db_host *x = &a->host[i], *y = &b->host[i];
        if (strcmp(x->name, y->name) || x->mem_mb != y->mem_mb || x->cpus != y->cpus ||
            x->fence_ipmi != y->fence_ipmi || x->joined != y->joined || x->maintenance != y->maintenance ||
            x->leaving != y->leaving || x->fenced != y->fenced || strcmp(x->addr, y->addr) || x->nodeid != y->nodeid) {
            snprintf(buf, sizeof buf, "host[%d]", i);
            return buf;
        }
    }
    for (int i = 0; i < HA_MAX_HOSTS; i++)
        if ((d = topo_diff(a->fence[i], b->fence[i]))) {
            snprintf(buf, sizeof buf, "fence[%d]: %s", i, d);
            return buf;
        }
    if (a->nvms != b->nvms)
        return "nvms";
    for (int i = 0; i < a->nvms; i++) {
        const struct ha_db_vm *x = &a->vm[i], *y = &b->vm[i];
        if (strcmp(x->name, y->name) || x->mem_mb != y->mem_mb || x->cpus != y->cpus || x->protect != y->protect ||
            x->priority != y->priority || x->order != y->order || x->want_running != y->want_running ||
            x->after1 != y->after1 || x->host != y->host || x->migrating_to != y->migrating_to ||
            x->xml_len != y->xml_len || !x->xml != !y->xml || (x->xml && memcmp(x->xml, y->xml, x->xml_len + 1))) {
            snprintf(buf, sizeof buf, "vm[%d]", i);
            return buf;
        }
    }
    if (a->nrules != b->nrules)
        return "nrules";
    for (int i = 0; i < a->nrules; i++)
        if ((d = rule_diff(&a->rule[i], &b->rule[i]))) {
            snprintf(buf, sizeof buf, "rule[%d]: %s", i, d);
            return buf;
        }
    return NULL;
}

static inline const char *change_diff(const struct ha_change *a, const struct ha_change *b)
{
#define F(x)                                                                                                      \
    if (a->x != b->x)                                                                                             \
        return #x;
    F(type) F(host) F(vm) F(arg) F(protect) F(priority) F(order) F(after1) F(when) F(mem_mb) F(cpus)
    F(fence_level) F(fence_index)
#undef F
    const char *d = rule_diff(&a->rule, &b->rule);
    if (d)
        return d;
    if (strcmp(a->name, b->name))
        return "name";
    if (strcmp(a->text, b->text))
        return "text";
    if (memcmp(a->blob, b->blob, sizeof a->blob))
        return "blob";
    if (a->type == HA_CHG_FENCE_SET && (d = dev_diff(&a->dev, &b->dev)))
        return d;
    if (a->xml_len != b->xml_len || !a->xml != !b->xml || (a->xml && memcmp(a->xml, b->xml, a->xml_len)))
        return "xml";
    return NULL;
}

#endif
