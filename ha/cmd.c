/* Parser for the admin command words shared by the `vigil` CLI and the
 * simulator's `cmd` lines.  It resolves names against the pool database and
 * never changes anything. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ha.h"

struct parser {
    const struct ha_db *db;
    int argc;
    char **argv;
    int i;
    char *err;
    size_t errlen;
};

static int fail(struct parser *p, const char *fmt, const char *word)
    __attribute__((format(printf, 2, 0)));
static int fail(struct parser *p, const char *fmt, const char *word)
{
    /* every fmt here is a literal with exactly one %s */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(p->err, p->errlen, fmt, word ? word : "");
#pragma GCC diagnostic pop
    return -EINVAL;
}

static const char *next(struct parser *p) { return p->i < p->argc ? p->argv[p->i++] : NULL; }

static int want_host(struct parser *p, int *out)
{
    const char *w = next(p);
    if (!w)
        return fail(p, "missing host name%s", NULL);
    int h = ha_db_find_host(p->db, w);
    if (h < 0)
        return fail(p, "unknown host '%s'", w);
    *out = h;
    return 0;
}

static int want_vm(struct parser *p, int *out)
{
    const char *w = next(p);
    if (!w)
        return fail(p, "missing VM name%s", NULL);
    int v = ha_db_find_vm(p->db, w);
    if (v < 0)
        return fail(p, "unknown VM '%s'", w);
    *out = v;
    return 0;
}

/* Options common to commands that admission control may refuse. */
static int option(struct parser *p, const char *w, struct ha_cmd *c)
{
    if (!strcmp(w, "--force")) {
        c->force = true;
        return 0;
    }
    return fail(p, "unexpected word '%s'", w);
}

static int parse_host(struct parser *p, struct ha_cmd *c)
{
    const char *sub = next(p);
    if (!sub)
        return fail(p, "'host' needs a subcommand (maintenance, evacuate, fence)%s", NULL);
    if (!strcmp(sub, "maintenance")) {
        c->type = HA_CMD_HOST_MAINT;
        if (want_host(p, &c->host) < 0)
            return -EINVAL;
        const char *w = next(p);
        if (!w)
            return fail(p, "'host maintenance' needs on or off%s", NULL);
        if (!strcmp(w, "on"))
            c->on = true;
        else if (!strcmp(w, "off"))
            c->on = false;
        else
            return fail(p, "'%s': expected on or off", w);
    } else if (!strcmp(sub, "evacuate")) {
        c->type = HA_CMD_HOST_EVACUATE;
        if (want_host(p, &c->host) < 0)
            return -EINVAL;
    } else if (!strcmp(sub, "fence")) {
        c->type = HA_CMD_HOST_FENCE;
        if (want_host(p, &c->host) < 0)
            return -EINVAL;
        const char *w;
        while ((w = next(p))) {
            if (!strcmp(w, "--yes"))
                c->yes = true;
            else
                return fail(p, "unexpected word '%s'", w);
        }
        if (!c->yes)
            return fail(p, "'host fence' powers a host off: confirm with --yes%s", NULL);
        return 0;
    } else {
        return fail(p, "unknown host subcommand '%s'", sub);
    }
    const char *w;
    while ((w = next(p)))
        if (option(p, w, c) < 0)
            return -EINVAL;
    return 0;
}

static int parse_vm(struct parser *p, struct ha_cmd *c)
{
    const char *sub = next(p);
    if (!sub)
        return fail(p, "'vm' needs a subcommand (start, stop, migrate, protect, unprotect)%s", NULL);
    const char *w;
    if (!strcmp(sub, "start")) {
        c->type = HA_CMD_VM_START;
        if (want_vm(p, &c->vm) < 0)
            return -EINVAL;
        while ((w = next(p))) {
            if (!strcmp(w, "--on")) {
                if (want_host(p, &c->host) < 0)
                    return -EINVAL;
            } else if (option(p, w, c) < 0)
                return -EINVAL;
        }
    } else if (!strcmp(sub, "stop")) {
        c->type = HA_CMD_VM_STOP;
        if (want_vm(p, &c->vm) < 0)
            return -EINVAL;
        if ((w = next(p)))
            return fail(p, "unexpected word '%s'", w);
    } else if (!strcmp(sub, "migrate")) {
        c->type = HA_CMD_VM_MIGRATE;
        if (want_vm(p, &c->vm) < 0 || want_host(p, &c->host) < 0)
            return -EINVAL;
        while ((w = next(p)))
            if (option(p, w, c) < 0)
                return -EINVAL;
    } else if (!strcmp(sub, "protect")) {
        c->type = HA_CMD_VM_PROTECT;
        c->protect = HA_PROTECT_RESTART;
        if (want_vm(p, &c->vm) < 0)
            return -EINVAL;
        while ((w = next(p))) {
            long n;
            if (!strcmp(w, "--restart"))
                c->protect = HA_PROTECT_RESTART;
            else if (!strcmp(w, "--best-effort"))
                c->protect = HA_PROTECT_BEST_EFFORT;
            else if (!strcmp(w, "--priority")) {
                const char *a = next(p);
                if (!a || ha_parse_int(a, 1, 5, &n) < 0)
                    return fail(p, "--priority takes 1 to 5, not '%s'", a ? a : "nothing");
                c->priority = (int)n;
            } else if (!strcmp(w, "--after")) {
                const char *a = next(p);
                if (!a)
                    return fail(p, "--after takes a VM name or none%s", NULL);
                if (!strcmp(a, "none"))
                    c->after = -1;
                else if ((c->after = ha_db_find_vm(p->db, a)) < 0)
                    return fail(p, "--after: unknown VM '%s'", a);
                else if (c->after == c->vm)
                    return fail(p, "--after: a VM cannot start after itself ('%s')", a);
            } else if (!strcmp(w, "--order")) {
                const char *a = next(p);
                if (!a || ha_parse_int(a, 0, 1000000, &n) < 0)
                    return fail(p, "--order takes a whole number, not '%s'", a ? a : "nothing");
                c->order = (int)n;
                c->has_order = true;
            } else if (option(p, w, c) < 0)
                return -EINVAL;
        }
    } else if (!strcmp(sub, "unprotect")) {
        c->type = HA_CMD_VM_UNPROTECT;
        if (want_vm(p, &c->vm) < 0)
            return -EINVAL;
        if ((w = next(p)))
            return fail(p, "unexpected word '%s'", w);
    } else {
        return fail(p, "unknown vm subcommand '%s'", sub);
    }
    return 0;
}

static int parse_rule(struct parser *p, struct ha_cmd *c)
{
    const char *sub = next(p);
    if (!sub)
        return fail(p, "'rule' needs a subcommand (add, del)%s", NULL);
    if (!strcmp(sub, "add")) {
        c->type = HA_CMD_RULE_ADD;
        for (int k = p->i; k < p->argc; k++)
            if (!strcmp(p->argv[k], "--force"))
                return fail(p, "'rule add' takes no --force: a contradictory rule is never added%s", NULL);
        int n = p->argc - p->i;
        p->i = p->argc;
        return ha_rule_parse(p->db, n, p->argv + (p->argc - n), &c->rule, p->err, p->errlen);
    }
    if (!strcmp(sub, "del")) {
        c->type = HA_CMD_RULE_DEL;
        const char *w = next(p);
        if (!w)
            return fail(p, "'rule del' needs a rule name%s", NULL);
        if (strlen(w) >= HA_NAME_MAX)
            return fail(p, "rule name too long: '%s'", w);
        snprintf(c->rule.name, sizeof c->rule.name, "%s", w); /* resolved when it runs */
        if ((w = next(p)))
            return fail(p, "unexpected word '%s'", w);
        return 0;
    }
    return fail(p, "unknown rule subcommand '%s'", sub);
}

static int parse_pool(struct parser *p, struct ha_cmd *c)
{
    const char *sub = next(p);
    if (!sub)
        return fail(p, "'pool' needs a subcommand (join, leave, eject, designate-master)%s", NULL);
    const char *w;
    if (!strcmp(sub, "join")) {
        c->type = HA_CMD_POOL_JOIN;
        if (want_host(p, &c->host) < 0)
            return -EINVAL;
        if ((w = next(p)))
            return fail(p, "unexpected word '%s'", w);
    } else if (!strcmp(sub, "leave")) {
        c->type = HA_CMD_POOL_LEAVE;
        while ((w = next(p))) {
            if (!strcmp(w, "--evacuate"))
                c->evacuate = true;
            else if (!strcmp(w, "--force"))
                c->force = true;
            else if (c->host == HA_NO_HOST && w[0] != '-') {
                p->i--;
                if (want_host(p, &c->host) < 0)
                    return -EINVAL;
            } else
                return fail(p, "unexpected word '%s'", w);
        }
    } else if (!strcmp(sub, "eject")) {
        c->type = HA_CMD_POOL_EJECT;
        if (want_host(p, &c->host) < 0)
            return -EINVAL;
        if ((w = next(p)))
            return fail(p, "unexpected word '%s'", w);
    } else if (!strcmp(sub, "designate-master")) {
        c->type = HA_CMD_DESIGNATE;
        if (want_host(p, &c->host) < 0)
            return -EINVAL;
        if ((w = next(p)))
            return fail(p, "unexpected word '%s'", w);
    } else {
        return fail(p, "unknown pool subcommand '%s'", sub);
    }
    return 0;
}

int ha_cmd_parse(const struct ha_db *db, int argc, char **argv, struct ha_cmd *out, char *err,
                 size_t errlen)
{
    struct parser p = {.db = db, .argc = argc, .argv = argv, .err = err, .errlen = errlen};
    struct ha_cmd c = {.type = HA_CMD_NONE, .host = HA_NO_HOST, .vm = -1, .order = INT32_MIN, .after = -2};
    const char *w = next(&p);
    int r;
    if (!w)
        return fail(&p, "empty command%s", NULL);
    if (!strcmp(w, "host"))
        r = parse_host(&p, &c);
    else if (!strcmp(w, "vm"))
        r = parse_vm(&p, &c);
    else if (!strcmp(w, "pool"))
        r = parse_pool(&p, &c);
    else if (!strcmp(w, "rule"))
        r = parse_rule(&p, &c);
    else
        r = fail(&p, "unknown command '%s' (expected host, vm, pool or rule)", w);
    if (r < 0)
        return r;
    *out = c;
    return 0;
}

const char *ha_cmd_name(enum ha_cmd_type t)
{
    static const char *const n[] = {"none",          "host maintenance", "host evacuate",
                                    "host fence",    "vm start",         "vm stop",
                                    "vm migrate",    "vm protect",       "vm unprotect",
                                    "pool join",     "pool leave",       "pool eject",
                                    "pool designate-master", "rule add",     "rule del"};
    return (unsigned)t < sizeof n / sizeof n[0] ? n[t] : "?";
}
