/* Scenario file parser.  The format is fixed (other tools write it); see
 * docs/scenarios.md.  A bad file is rejected whole with FILE:LINE. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define MAX_WORDS 64
#define MAX_LINE 4096

struct ctx {
    struct scenario *s;
    const char *name;
    int line;
    char *err;
    size_t errlen;
};

static int bad(struct ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(struct ctx *x, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(x->err, x->errlen, "%s:%d: %s", x->name, x->line, msg);
    return -EINVAL;
}

static int host_arg(struct ctx *x, const char *w, int *out)
{
    int h = ha_db_find_host(&x->s->db, w);
    if (h < 0)
        return bad(x, "undefined host '%s'", w);
    *out = h;
    return 0;
}

static int vm_arg(struct ctx *x, const char *w, int *out)
{
    int v = ha_db_find_vm(&x->s->db, w);
    if (v < 0)
        return bad(x, "undefined VM '%s'", w);
    *out = v;
    return 0;
}

static int time_arg(struct ctx *x, const char *w, ha_ms *out)
{
    if (ha_parse_duration(w, out) < 0)
        return bad(x, "bad time '%s' (expected e.g. 30, 30s, 1500ms, 2m)", w);
    return 0;
}

int scenario_add_event(struct scenario *s, const struct scn_event *e)
{
    if (s->nev == s->capev) {
        int cap = s->capev ? s->capev * 2 : 32;
        struct scn_event *n = realloc(s->ev, (size_t)cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        s->ev = n;
        s->capev = cap;
    }
    s->ev[s->nev++] = *e;
    return 0;
}

static int add_expect(struct scenario *s, const struct scn_expect *e)
{
    if (s->nex == s->capex) {
        int cap = s->capex ? s->capex * 2 : 32;
        struct scn_expect *n = realloc(s->ex, (size_t)cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        s->ex = n;
        s->capex = cap;
    }
    s->ex[s->nex++] = *e;
    return 0;
}

/* key=value options of host and vm lines */
static char *opt(struct ctx *x, int argc, char **argv, int from, const char *key, const char *const *allowed)
{
    (void)x;
    size_t kl = strlen(key);
    char *found = NULL;
    for (int i = from; i < argc; i++) {
        if (!strncmp(argv[i], key, kl) && argv[i][kl] == '=')
            found = argv[i] + kl + 1;
    }
    (void)allowed;
    return found;
}

static int check_keys(struct ctx *x, int argc, char **argv, int from, const char *const *keys)
{
    for (int i = from; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq)
            return bad(x, "expected key=value, got '%s'", argv[i]);
        bool ok = false;
        for (const char *const *k = keys; *k; k++)
            if ((size_t)(eq - argv[i]) == strlen(*k) && !strncmp(argv[i], *k, strlen(*k)))
                ok = true;
        if (!ok)
            return bad(x, "unknown option '%.*s'", (int)(eq - argv[i]), argv[i]);
        for (int j = from; j < i; j++)
            if (!strncmp(argv[j], argv[i], (size_t)(eq - argv[i]) + 1))
                return bad(x, "option '%.*s' given twice", (int)(eq - argv[i]), argv[i]);
    }
    return 0;
}

static int parse_host(struct ctx *x, int argc, char **argv)
{
    static const char *const keys[] = {"mem", "cpus", "fence", "member", NULL};
    if (argc < 2)
        return bad(x, "host needs a name");
    if (strlen(argv[1]) >= HA_NAME_MAX)
        return bad(x, "host name too long");
    if (argv[1][0] == '-' || strchr(argv[1], '=') || strchr(argv[1], ',') || strchr(argv[1], '|') ||
        !strcmp(argv[1], "all") || !strcmp(argv[1], "any") || !strcmp(argv[1], "host") ||
        !strcmp(argv[1], "vm") || !strcmp(argv[1], "pool"))
        return bad(x, "'%s' cannot be a host name", argv[1]);
    if (check_keys(x, argc, argv, 2, keys) < 0)
        return -EINVAL;
    struct ha_db_host h = {.joined = true, .fence_ipmi = true};
    snprintf(h.name, sizeof h.name, "%s", argv[1]);
    char *mem = opt(x, argc, argv, 2, "mem", NULL), *cpus = opt(x, argc, argv, 2, "cpus", NULL);
    char *fence = opt(x, argc, argv, 2, "fence", NULL), *member = opt(x, argc, argv, 2, "member", NULL);
    if (!mem || ha_parse_size_mb(mem, &h.mem_mb) < 0)
        return bad(x, "host %s: mem=<size> is required (e.g. mem=64G)", h.name);
    long n;
    if (!cpus || ha_parse_int(cpus, 1, 4096, &n) < 0)
        return bad(x, "host %s: cpus=<n> is required (1..4096)", h.name);
    h.cpus = (int)n;
    if (fence && !strcmp(fence, "none"))
        h.fence_ipmi = false;
    else if (fence && strcmp(fence, "ipmi"))
        return bad(x, "host %s: fence must be ipmi or none, not '%s'", h.name, fence);
    if (member && !strcmp(member, "no"))
        h.joined = false;
    else if (member && strcmp(member, "yes"))
        return bad(x, "host %s: member must be yes or no, not '%s'", h.name, member);
    if (x->s->db.nvms)
        return bad(x, "host lines must come before vm lines");
    int r = ha_db_add_host(&x->s->db, &h);
    if (r == -EEXIST)
        return bad(x, "host %s defined twice", h.name);
    if (r < 0)
        return bad(x, "too many hosts (at most %d)", HA_MAX_HOSTS);
    return 0;
}

static int parse_vm(struct ctx *x, int argc, char **argv)
{
    static const char *const keys[] = {"on", "mem", "cpus", "ha", "priority", "order", "state", "after", NULL};
    if (argc < 2)
        return bad(x, "vm needs a name");
    if (strlen(argv[1]) >= HA_NAME_MAX)
        return bad(x, "VM name too long");
    if (argv[1][0] == '-' || strchr(argv[1], '='))
        return bad(x, "'%s' cannot be a VM name", argv[1]);
    if (check_keys(x, argc, argv, 2, keys) < 0)
        return -EINVAL;
    struct ha_db_vm v = {.protect = HA_PROTECT_RESTART, .priority = 3, .want_running = true};
    snprintf(v.name, sizeof v.name, "%s", argv[1]);
    char *on = opt(x, argc, argv, 2, "on", NULL), *mem = opt(x, argc, argv, 2, "mem", NULL);
    char *cpus = opt(x, argc, argv, 2, "cpus", NULL), *ha = opt(x, argc, argv, 2, "ha", NULL);
    char *prio = opt(x, argc, argv, 2, "priority", NULL), *order = opt(x, argc, argv, 2, "order", NULL);
    char *state = opt(x, argc, argv, 2, "state", NULL), *after = opt(x, argc, argv, 2, "after", NULL);
    if (!on)
        return bad(x, "vm %s: on=<host> is required", v.name);
    if (host_arg(x, on, &v.host) < 0)
        return -EINVAL;
    if (!mem || ha_parse_size_mb(mem, &v.mem_mb) < 0)
        return bad(x, "vm %s: mem=<size> is required (e.g. mem=2G)", v.name);
    long n;
    if (!cpus || ha_parse_int(cpus, 1, 1024, &n) < 0)
        return bad(x, "vm %s: cpus=<n> is required (1..1024)", v.name);
    v.cpus = (int)n;
    if (ha) {
        if (!strcmp(ha, "restart"))
            v.protect = HA_PROTECT_RESTART;
        else if (!strcmp(ha, "best-effort"))
            v.protect = HA_PROTECT_BEST_EFFORT;
        else if (!strcmp(ha, "off"))
            v.protect = HA_PROTECT_OFF;
        else
            return bad(x, "vm %s: ha must be restart, best-effort or off, not '%s'", v.name, ha);
    }
    if (prio) {
        if (ha_parse_int(prio, 1, 5, &n) < 0)
            return bad(x, "vm %s: priority must be 1..5, not '%s'", v.name, prio);
        v.priority = (int)n;
    }
    if (order) {
        if (ha_parse_int(order, 0, 1000000, &n) < 0)
            return bad(x, "vm %s: order must be a whole number, not '%s'", v.name, order);
        v.order = (int)n;
    }
    if (state) {
        if (!strcmp(state, "running"))
            v.want_running = true;
        else if (!strcmp(state, "stopped"))
            v.want_running = false;
        else
            return bad(x, "vm %s: state must be running or stopped, not '%s'", v.name, state);
    }
    if (after) {
        int a = ha_db_find_vm(&x->s->db, after);
        if (a < 0)
            return bad(x, "vm %s: after=%s names no VM defined above", v.name, after);
        v.after1 = a + 1;
    }
    int r = ha_db_add_vm(&x->s->db, &v);
    if (r == -EEXIST)
        return bad(x, "vm %s defined twice", v.name);
    if (r < 0)
        return bad(x, "cannot add vm %s", v.name);
    struct scn_vm_init *ni = realloc(x->s->vminit, (size_t)x->s->db.nvms * sizeof *ni);
    if (!ni)
        return bad(x, "out of memory");
    x->s->vminit = ni;
    ni[r] = (struct scn_vm_init){.host = v.host, .running = v.want_running};
    return 0;
}

static int parse_partition(struct ctx *x, int argc, char **argv, int from, struct scn_event *e)
{
    char buf[MAX_LINE] = "";
    for (int i = from; i < argc; i++) {
        strncat(buf, argv[i], sizeof buf - strlen(buf) - 2);
        strncat(buf, " ", sizeof buf - strlen(buf) - 1);
    }
    ha_hostset used = 0;
    char *save = NULL;
    for (char *grp = strtok_r(buf, "|", &save); grp; grp = strtok_r(NULL, "|", &save)) {
        ha_hostset g = 0;
        char *s2 = NULL;
        for (char *w = strtok_r(grp, ", ", &s2); w; w = strtok_r(NULL, ", ", &s2)) {
            int h = 0;
            if (host_arg(x, w, &h) < 0)
                return -EINVAL;
            if (used & HA_BIT(h))
                return bad(x, "host %s is in two groups", w);
            used |= HA_BIT(h);
            g |= HA_BIT(h);
        }
        if (!g)
            return bad(x, "empty group in partition");
        e->group[e->ngroups++] = g;
    }
    if (e->ngroups < 2)
        return bad(x, "partition needs at least two groups separated by |");
    return 0;
}

static int parse_at(struct ctx *x, int argc, char **argv, const char *raw)
{
    struct scn_event e = {.host = HA_NO_HOST, .vm = -1, .cmd_host = HA_NO_HOST, .line = x->line};
    snprintf(e.text, sizeof e.text, "%s", raw);
    if (argc < 3)
        return bad(x, "'at' needs a time and an event");
    if (time_arg(x, argv[1], &e.at) < 0)
        return -EINVAL;
    const char *k = argv[2];
    static const struct {
        const char *w;
        enum scn_kind k;
        int args; /* 1: a host, 2: a vm, 0: none */
    } kinds[] = {
        {"start", SCN_START, 1},        {"crash", SCN_CRASH, 1},       {"isolate", SCN_ISOLATE, 1},
        {"storage-loss", SCN_STORAGE_LOSS, 1}, {"heal", SCN_HEAL, 0},  {"fence-fail", SCN_FENCE_FAIL, 1},
        {"fence-ok", SCN_FENCE_OK, 1},  {"power-on", SCN_POWER_ON, 1}, {"vm-crash", SCN_VM_CRASH, 2},
    };
    if (!strcmp(k, "partition")) {
        e.kind = SCN_PARTITION;
        if (parse_partition(x, argc, argv, 3, &e) < 0)
            return -EINVAL;
        return scenario_add_event(x->s, &e) < 0 ? bad(x, "out of memory") : 0;
    }
    if (!strcmp(k, "load")) {
        e.kind = SCN_LOAD;
        if (argc != 5)
            return bad(x, "'load' takes a VM and a CPU percentage (e.g. load web1 40%%)");
        if (vm_arg(x, argv[3], &e.vm) < 0)
            return -EINVAL;
        char num[32];
        snprintf(num, sizeof num, "%s", argv[4]);
        size_t l = strlen(num);
        if (l && num[l - 1] == '%')
            num[--l] = 0;
        long pct;
        if (ha_parse_int(num, 0, 100000, &pct) < 0)
            return bad(x, "bad load '%s' (a whole percentage of one CPU, e.g. 40%%)", argv[4]);
        e.load = (double)pct;
        return scenario_add_event(x->s, &e) < 0 ? bad(x, "out of memory") : 0;
    }
    if (!strcmp(k, "cmd")) {
        e.kind = SCN_CMD;
        int from = 3;
        if (argc > 3 && ha_db_find_host(&x->s->db, argv[3]) >= 0) {
            e.cmd_host = ha_db_find_host(&x->s->db, argv[3]);
            from = 4;
        }
        char err[256];
        if (ha_cmd_parse(&x->s->db, argc - from, argv + from, &e.cmd, err, sizeof err) < 0)
            return bad(x, "cmd: %s", err);
        return scenario_add_event(x->s, &e) < 0 ? bad(x, "out of memory") : 0;
    }
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(k, kinds[i].w))
            continue;
        e.kind = kinds[i].k;
        int want = kinds[i].args ? 4 : 3;
        if (argc != want)
            return bad(x, "'%s' takes %s", k, kinds[i].args == 1 ? "one host" : kinds[i].args == 2 ? "one VM" : "nothing");
        if (kinds[i].args == 1) {
            if (e.kind == SCN_START && !strcmp(argv[3], "all"))
                e.host = HA_NO_HOST;
            else if (host_arg(x, argv[3], &e.host) < 0)
                return -EINVAL;
        } else if (kinds[i].args == 2 && vm_arg(x, argv[3], &e.vm) < 0)
            return -EINVAL;
        return scenario_add_event(x->s, &e) < 0 ? bad(x, "out of memory") : 0;
    }
    return bad(x, "unknown event '%s'", k);
}

static int parse_expect(struct ctx *x, int argc, char **argv, const char *raw)
{
    struct scn_expect e = {.line = x->line, .vm = -1, .host = HA_NO_HOST};
    snprintf(e.src, sizeof e.src, "%s", raw);
    int i = 1;
    if (argc < 2)
        return bad(x, "expect needs at, by or never");
    if (!strcmp(argv[1], "never")) {
        e.when = EXP_NEVER;
        i = 2;
    } else if (!strcmp(argv[1], "at") || !strcmp(argv[1], "by")) {
        e.when = argv[1][0] == 'a' ? EXP_AT : EXP_BY;
        if (argc < 3 || time_arg(x, argv[2], &e.at) < 0)
            return argc < 3 ? bad(x, "expect %s needs a time", argv[1]) : -EINVAL;
        i = 3;
    } else
        return bad(x, "expect needs at, by or never, not '%s'", argv[1]);
    int n = argc - i;
    char **a = argv + i;
    if (n < 1)
        return bad(x, "expect needs something to check");
    if (!strcmp(a[0], "vm")) {
        if (n < 3 || vm_arg(x, a[1], &e.vm) < 0)
            return n < 3 ? bad(x, "expect vm needs a VM and a state") : -EINVAL;
        if (!strcmp(a[2], "running")) {
            if (n != 5 || strcmp(a[3], "on"))
                return bad(x, "expected 'vm %s running on <host>|<h1|h2>|any'", a[1]);
            e.kind = EXP_VM_ON;
            if (strcmp(a[4], "any")) {
                char buf[512];
                snprintf(buf, sizeof buf, "%s", a[4]);
                char *save = NULL;
                for (char *w = strtok_r(buf, "|", &save); w; w = strtok_r(NULL, "|", &save)) {
                    int h = 0;
                    if (host_arg(x, w, &h) < 0)
                        return -EINVAL;
                    e.hosts |= HA_BIT(h);
                }
                if (!e.hosts)
                    return bad(x, "no host named after 'running on'");
            }
        } else if (n == 3 && !strcmp(a[2], "stopped")) {
            e.kind = EXP_VM_STOPPED;
        } else if (n == 3) {
            e.kind = EXP_VM_STATE;
            e.state = -1;
            for (int s = HA_VM_STOPPED; s <= HA_VM_FAILED; s++)
                if (!strcmp(a[2], ha_vm_state_name(s)))
                    e.state = s;
            if (e.state < 0)
                return bad(x, "unknown VM state '%s'", a[2]);
        } else
            return bad(x, "unexpected words after 'vm %s %s'", a[1], a[2]);
        if (e.when == EXP_NEVER && e.kind != EXP_VM_ON)
            return bad(x, "expect never only takes 'vm VM running on HOST'");
    } else if (e.when == EXP_NEVER) {
        return bad(x, "expect never only takes 'vm VM running on HOST'");
    } else if (!strcmp(a[0], "host")) {
        if (n != 3 || host_arg(x, a[1], &e.host) < 0)
            return n != 3 ? bad(x, "expected 'host <host> <state>'") : -EINVAL;
        e.kind = EXP_HOST;
        e.state = -1;
        for (int s = HA_HOST_OFFLINE; s <= HA_HOST_LEFT; s++)
            if (!strcmp(a[2], ha_host_state_name(s)))
                e.state = s;
        if (e.state < 0)
            return bad(x, "unknown host state '%s'", a[2]);
    } else if (!strcmp(a[0], "master")) {
        if (n != 2)
            return bad(x, "expected 'master <host>'");
        e.kind = EXP_MASTER;
        if (host_arg(x, a[1], &e.host) < 0)
            return -EINVAL;
    } else if (!strcmp(a[0], "plan")) {
        long n2 = -1;
        if (n != 3 || strcmp(a[1], "tolerates") ||
            (strcmp(a[2], "none") && ha_parse_int(a[2], 0, HA_MAX_HOSTS, &n2) < 0))
            return bad(x, "expected 'plan tolerates <n>' or 'plan tolerates none'");
        e.kind = EXP_PLAN;
        e.state = (int)n2; /* none: -1, some protected VM has no place even now */
    } else if (!strcmp(a[0], "refused")) {
        if (n != 1)
            return bad(x, "unexpected words after 'refused'");
        e.kind = EXP_REFUSED;
    } else if (!strcmp(a[0], "explain")) {
        /* extension: expect at|by T explain VM "text" (substring) */
        if (n < 3 || vm_arg(x, a[1], &e.vm) < 0)
            return n < 3 ? bad(x, "expected 'explain <vm> \"text\"'") : -EINVAL;
        const char *q = strchr(raw, '"');
        const char *q2 = q ? strrchr(raw, '"') : NULL;
        if (!q || q2 == q)
            return bad(x, "explain text must be in double quotes");
        snprintf(e.text, sizeof e.text, "%.*s", (int)(q2 - q - 1), q + 1);
        e.kind = EXP_EXPLAIN;
    } else
        return bad(x, "unknown expectation '%s'", a[0]);
    return add_expect(x->s, &e) < 0 ? bad(x, "out of memory") : 0;
}

static int parse_line(struct ctx *x, char *line)
{
    char *hash = strchr(line, '#');
    /* a # inside the quoted text of an explain expectation is text */
    char *quote = strchr(line, '"');
    if (hash && !(quote && quote < hash))
        *hash = 0;
    char raw[256];
    size_t l = strlen(line);
    while (l && (line[l - 1] == ' ' || line[l - 1] == '\t' || line[l - 1] == '\r'))
        line[--l] = 0;
    const char *start = line + strspn(line, " \t");
    snprintf(raw, sizeof raw, "%s", start);
    char *argv[MAX_WORDS];
    int argc = 0;
    char *save = NULL;
    for (char *w = strtok_r(line, " \t\r", &save); w; w = strtok_r(NULL, " \t\r", &save)) {
        if (argc == MAX_WORDS)
            return bad(x, "too many words on one line");
        argv[argc++] = w;
    }
    if (!argc)
        return 0;
    for (const unsigned char *p = (const unsigned char *)raw; *p; p++)
        if (*p < 0x20 && *p != '\t')
            return bad(x, "control character in line");
    if (!strcmp(argv[0], "set")) {
        if (argc != 3)
            return bad(x, "set takes a name and a value");
        char err[256];
        if (ha_settings_set(&x->s->db.set, argv[1], argv[2], err, sizeof err) < 0)
            return bad(x, "%s", err);
        return 0;
    }
    if (!strcmp(argv[0], "host"))
        return parse_host(x, argc, argv);
    if (!strcmp(argv[0], "vm"))
        return parse_vm(x, argc, argv);
    if (!strcmp(argv[0], "at"))
        return parse_at(x, argc, argv, raw);
    if (!strcmp(argv[0], "expect"))
        return parse_expect(x, argc, argv, raw);
    if (!strcmp(argv[0], "rule")) {
        struct ha_rule r;
        char err[256];
        if (ha_rule_parse(&x->s->db, argc - 1, argv + 1, &r, err, sizeof err) < 0)
            return bad(x, "rule: %s", err);
        if (ha_rule_check(&x->s->db, &r, err, sizeof err) < 0)
            return bad(x, "rule %s: %s", r.name, err);
        struct ha_change ch = {.type = HA_CHG_RULE_ADD, .host = HA_NO_HOST, .vm = -1, .rule = r};
        if (ha_db_apply(&x->s->db, &ch) < 0)
            return bad(x, "rule %s cannot be added", r.name);
        return 0;
    }
    if (!strcmp(argv[0], "end")) {
        if (argc != 2)
            return bad(x, "end takes one time");
        if (x->s->end)
            return bad(x, "end given twice");
        if (time_arg(x, argv[1], &x->s->end) < 0)
            return -EINVAL;
        if (x->s->end <= 0)
            return bad(x, "end must be after 0");
        return 0;
    }
    return bad(x, "unknown keyword '%s'", argv[0]);
}

int scenario_parse(const char *name, const char *text, struct scenario *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    ha_db_init(&s->db);
    snprintf(s->file, sizeof s->file, "%s", name);
    struct ctx x = {.s = s, .name = name, .err = err, .errlen = errlen};
    const char *p = text;
    int r = 0;
    while (*p && r == 0) {
        x.line++;
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len >= MAX_LINE) {
            r = bad(&x, "line longer than %d characters", MAX_LINE - 1);
            break;
        }
        char line[MAX_LINE];
        memcpy(line, p, len);
        line[len] = 0;
        if (memchr(p, 0, len)) {
            r = bad(&x, "NUL byte in line");
            break;
        }
        r = parse_line(&x, line);
        p = nl ? nl + 1 : p + len;
    }
    if (r == 0) {
        x.line = 0;
        if (!s->db.nhosts)
            r = bad(&x, "no host defined");
        else if (!s->end)
            r = bad(&x, "no 'end <time>' line");
        for (int i = 0; r == 0 && i < s->nev; i++)
            if (s->ev[i].at > s->end) {
                x.line = s->ev[i].line;
                r = bad(&x, "event after the end time");
            }
        for (int i = 0; r == 0 && i < s->nex; i++)
            if (s->ex[i].at > s->end) {
                x.line = s->ex[i].line;
                r = bad(&x, "expectation after the end time");
            }
    }
    if (r < 0) {
        scenario_free(s);
        return r;
    }
    return 0;
}

int scenario_load(const char *path, struct scenario *s, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -errno;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return -ENOMEM;
    }
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            if (cap >= (64u << 20)) {
                free(buf);
                fclose(f);
                snprintf(err, errlen, "%s: larger than 64 MiB", path);
                return -EFBIG;
            }
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return -ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    buf[n] = 0;
    if (strlen(buf) != n) {
        free(buf);
        snprintf(err, errlen, "%s: contains a NUL byte (not a scenario file)", path);
        return -EINVAL;
    }
    int r = scenario_parse(path, buf, s, err, errlen);
    free(buf);
    return r;
}

void scenario_free(struct scenario *s)
{
    ha_db_free(&s->db);
    free(s->vminit);
    free(s->ev);
    free(s->ex);
    s->vminit = NULL;
    s->ev = NULL;
    s->ex = NULL;
    s->nev = s->nex = s->capev = s->capex = 0;
}
