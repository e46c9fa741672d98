/* Unit tests of the VM agent (agents/vagent.h) against libvirt itself: its
 * test driver in this process (test:///<scratch>/node.xml, a private
 * hypervisor per connection) for the lifecycle, the errors, the events and
 * the double-start check, and a unix socket that accepts and never answers
 * for a hung libvirtd.  Real QEMU guests are the rig's business. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agents/vagent.h"
#include "agents/vagent_int.h"
#include "tests/scratch.h"
#include "tests/unit/check_main.h"

#include <libvirt/libvirt.h> /* event and detail numbers for vagent_map_event */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ vagent_xml_check */

static int check(const char *xml, char *err)
{
    char name[VAGENT_NAME_MAX];
    uint64_t mem = 0;
    int vcpus = 0;
    return vagent_xml_check(xml, strlen(xml), name, &mem, &vcpus, err, VAGENT_WHY_MAX);
}

static void refused(const char *xml, const char *reason)
{
    char err[VAGENT_WHY_MAX] = "";
    ck_assert_int_eq(check(xml, err), -EINVAL);
    ck_assert_msg(strstr(err, reason), "for %s: wanted a reason with '%s', got '%s'", xml, reason, err);
}

START_TEST(xml_good)
{
    char name[VAGENT_NAME_MAX], err[VAGENT_WHY_MAX];
    uint64_t mem = 0;
    int vcpus = 0;
    const char *x = "<?xml version='1.0'?>\n<domain type='kvm'>\n  <name> db.prod_2 </name>\n"
                    "  <uuid>6f1e0c4a-9b1d-4c3e-8a55-1c2d3e4f5a6b</uuid>\n  <memory unit='MiB'>64</memory>\n"
                    "  <vcpu placement='static'>3</vcpu>\n  <!-- a comment --><devices/>\n</domain>\n";
    ck_assert_int_eq(vagent_xml_check(x, strlen(x), name, &mem, &vcpus, err, sizeof err), 0);
    ck_assert_str_eq(name, "db.prod_2");
    ck_assert_uint_eq(mem, 65536);
    ck_assert_int_eq(vcpus, 3);
    /* default unit KiB, default 1 vCPU, bytes rounded up to whole KiB */
    x = "<domain type='qemu'><name>a</name><memory>1000</memory></domain>";
    ck_assert_int_eq(vagent_xml_check(x, strlen(x), name, &mem, &vcpus, err, sizeof err), 0);
    ck_assert_uint_eq(mem, 1000);
    ck_assert_int_eq(vcpus, 1);
    x = "<domain type='qemu'><name>a</name><memory unit='b'>1025</memory><vcpu>4096</vcpu></domain>";
    ck_assert_int_eq(vagent_xml_check(x, strlen(x), name, &mem, &vcpus, err, sizeof err), 0);
    ck_assert_uint_eq(mem, 2);
    ck_assert_int_eq(vcpus, 4096);
    x = "<domain type='qemu'><name>a</name><memory unit='GB'>1</memory><uuid>6f1e0c4a9b1d4c3e8a551c2d3e4f5a6b</uuid></domain>";
    ck_assert_int_eq(vagent_xml_check(x, strlen(x), NULL, &mem, NULL, err, sizeof err), 0);
    ck_assert_uint_eq(mem, 976563);
}
END_TEST

START_TEST(xml_bad)
{
    refused("", "empty");
    refused("<domain type='kvm'><name>a</name><memory>1", "not well-formed XML: line 1");
    refused("<vm type='kvm'><name>a</name><memory>1</memory></vm>", "root element is <vm>");
    refused("<domain><name>a</name><memory>1</memory></domain>", "no type attribute");
    refused("<domain type='kvm'><memory>1</memory></domain>", "no <name>");
    refused("<domain type='kvm'><name>a</name><name>b</name><memory>1</memory></domain>", "more than one <name>");
    refused("<domain type='kvm'><name>a/b</name><memory>1</memory></domain>", "<name> must be");
    refused("<domain type='kvm'><name></name><memory>1</memory></domain>", "<name> must be");
    refused("<domain type='kvm'><name>aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa</name><memory>1</memory></domain>",
            "<name> must be");
    refused("<domain type='kvm'><name>a<b/></name><memory>1</memory></domain>", "<name> must be");
    refused("<domain type='kvm'><name>a</name></domain>", "no <memory>");
    refused("<domain type='kvm'><name>a</name><memory>-1</memory></domain>", "not a whole number");
    refused("<domain type='kvm'><name>a</name><memory>0</memory></domain>", "<memory> is 0");
    refused("<domain type='kvm'><name>a</name><memory>99999999999999999999999</memory></domain>", "not a whole number");
    refused("<domain type='kvm'><name>a</name><memory unit='TiB'>99999999</memory></domain>", "too large");
    refused("<domain type='kvm'><name>a</name><memory unit='XB'>1</memory></domain>", "unknown unit");
    refused("<domain type='kvm'><name>a</name><memory>1</memory><memory>2</memory></domain>", "more than one <memory>");
    refused("<domain type='kvm'><name>a</name><memory>1</memory><vcpu>0</vcpu></domain>", "<vcpu> must be");
    refused("<domain type='kvm'><name>a</name><memory>1</memory><vcpu>4097</vcpu></domain>", "<vcpu> must be");
    refused("<domain type='kvm'><name>a</name><memory>1</memory><vcpu>1</vcpu><vcpu>1</vcpu></domain>", "more than one <vcpu>");
    refused("<domain type='kvm'><name>a</name><memory>1</memory><uuid>xyz</uuid></domain>", "not a UUID");
    refused("<!DOCTYPE domain [<!ENTITY n 'a'>]><domain type='kvm'><name>&n;</name><memory>1</memory></domain>",
            "DOCTYPE");
    refused("<d:domain xmlns:d='x' type='kvm'><name>a</name><memory>1</memory></d:domain>", "namespace");
    /* a NUL inside, and more than the limit */
    char err[VAGENT_WHY_MAX];
    const char nul[] = "<domain type='kvm'><name>a</name>\0<memory>1</memory></domain>";
    ck_assert_int_eq(vagent_xml_check(nul, sizeof nul - 1, NULL, NULL, NULL, err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "NUL"));
    ck_assert_int_eq(vagent_xml_check(nul, VAGENT_XML_MAX + 1, NULL, NULL, NULL, err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "at most"));
}
END_TEST

START_TEST(event_mapping)
{
    /* a guest killed behind libvirt's back is reported stopped/failed */
    ck_assert_int_eq(vagent_map_event(VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_FAILED), VAGENT_EV_CRASHED);
    ck_assert_int_eq(vagent_map_event(VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_CRASHED), VAGENT_EV_CRASHED);
    ck_assert_int_eq(vagent_map_event(VIR_DOMAIN_EVENT_CRASHED, VIR_DOMAIN_EVENT_CRASHED_PANICKED), VAGENT_EV_CRASHED);
    ck_assert_int_eq(vagent_map_event(VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_DESTROYED), VAGENT_EV_STOPPED);
    ck_assert_int_eq(vagent_map_event(VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN), VAGENT_EV_STOPPED);
    ck_assert_int_eq(vagent_map_event(VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_MIGRATED),
                     VAGENT_EV_MIGRATED_OUT);
    /* an incoming migration runs here once resumed, not when its paused QEMU is started */
    ck_assert_int_eq(vagent_map_event(VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_MIGRATED), VAGENT_EV_OTHER);
    ck_assert_int_eq(vagent_map_event(VIR_DOMAIN_EVENT_RESUMED, VIR_DOMAIN_EVENT_RESUMED_MIGRATED),
                     VAGENT_EV_MIGRATED_IN);
    ck_assert_int_eq(vagent_map_event(VIR_DOMAIN_EVENT_RESUMED, VIR_DOMAIN_EVENT_RESUMED_UNPAUSED), VAGENT_EV_OTHER);
    ck_assert_int_eq(vagent_map_event(VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_BOOTED), VAGENT_EV_STARTED);
    ck_assert_int_eq(vagent_map_event(VIR_DOMAIN_EVENT_UNDEFINED, 0), VAGENT_EV_UNDEFINED);
    ck_assert_int_eq(vagent_map_event(VIR_DOMAIN_EVENT_SUSPENDED, 0), VAGENT_EV_OTHER);
    ck_assert_int_eq(vagent_map_event(VIR_DOMAIN_EVENT_DEFINED, 0), VAGENT_EV_OTHER);
    ck_assert_str_eq(vagent_ev_name(VAGENT_EV_CRASHED), "crashed");
    ck_assert_str_eq(vagent_state_name(VAGENT_SHUTOFF), "shutoff");
    ck_assert_str_eq(vagent_op_name(VAGENT_OP_MIGRATE), "migrate");
}
END_TEST

/* ------------------------------------------------------------------ a caller's loop */

#define MAX_SEEN 256

struct seen {
    struct vagent_result ev[MAX_SEEN]; /* events and connection changes, in order */
    int n;
};

static struct seen seen;
static uint64_t tags;

/* drains the queue for up to ms; the result of `tag` when it comes (returns 1) */
static int drain(struct vagent *a, uint64_t tag, int ms, struct vagent_result *out)
{
    uint64_t until = mono_ms() + (uint64_t)ms;
    for (;;) {
        struct vagent_result r;
        while (vagent_next(a, &r) == 1) {
            if (r.kind == VAGENT_RESULT && tag && r.tag == tag) {
                *out = r;
                return 1;
            }
            ck_assert_msg(r.kind != VAGENT_RESULT, "a result for tag %llu nobody waits for", (unsigned long long)r.tag);
            if (seen.n < MAX_SEEN)
                seen.ev[seen.n++] = r;
        }
        uint64_t now = mono_ms();
        if (now >= until)
            return 0;
        struct pollfd p = {.fd = vagent_fd(a), .events = POLLIN};
        poll(&p, 1, (int)(until - now));
    }
}

static struct vagent_result run(struct vagent *a, struct vagent_job *j)
{
    char err[VAGENT_WHY_MAX];
    struct vagent_result r;
    j->tag = ++tags;
    ck_assert_msg(vagent_submit(a, j, err, sizeof err) == 0, "submit: %s", err);
    ck_assert_msg(drain(a, j->tag, 60000, &r), "no result for %s %s", vagent_op_name(j->op), j->name);
    ck_assert_int_eq(r.kind, VAGENT_RESULT);
    ck_assert_int_eq(r.op, j->op);
    if (j->op != VAGENT_OP_LIST)
        ck_assert_str_eq(r.name, j->name);
    return r;
}

static struct vagent_job job(enum vagent_op op, const char *name)
{
    struct vagent_job j = {.op = op};
    snprintf(j.name, sizeof j.name, "%s", name);
    return j;
}

/* the event, once seen (waiting up to 10 s for it), or NULL */
static const struct vagent_result *saw(struct vagent *a, const char *name, enum vagent_ev ev)
{
    uint64_t until = mono_ms() + 10000;
    do {
        for (int i = 0; i < seen.n; i++)
            if (seen.ev[i].kind == VAGENT_EVENT && seen.ev[i].ev == ev && !strcmp(seen.ev[i].name, name))
                return &seen.ev[i];
        struct vagent_result none;
        drain(a, 0, 100, &none);
    } while (mono_ms() < until);
    return NULL;
}

static const struct vagent_vm *find_vm(const struct vagent_result *r, const char *name)
{
    for (int i = 0; i < r->nvms; i++)
        if (!strcmp(r->vms[i].name, name))
            return &r->vms[i];
    return NULL;
}

static const char *domain_xml(const char *name)
{
    static char x[512];
    snprintf(x, sizeof x,
             "<domain type='test'><name>%s</name><memory unit='MiB'>128</memory><vcpu>2</vcpu>"
             "<os><type arch='x86_64'>hvm</type></os></domain>",
             name);
    return x;
}

/* a test driver hypervisor: a node file with `name` running on it */
static const char *node_uri(const char *file, const char *name)
{
    static char uri[2][VAGENT_URI_MAX];
    static int k;
    k ^= 1;
    FILE *f = fopen(scratch_path(file), "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "<node>\n%s\n</node>\n", domain_xml(name));
    fclose(f);
    snprintf(uri[k], sizeof uri[k], "test://%s", scratch_path(file));
    return uri[k];
}

static struct vagent *agent_on(const char *uri, int connect_timeout_ms)
{
    char err[VAGENT_WHY_MAX];
    struct vagent_opts o = {.uri = uri, .connect_timeout_ms = connect_timeout_ms};
    struct vagent *a = vagent_new(&o, err, sizeof err);
    ck_assert_msg(a, "vagent_new: %s", err);
    return a;
}

static void setup(void)
{
    scratch_make("vagent");
    memset(&seen, 0, sizeof seen);
}

static void daemon_stop(void);
static void teardown(void)
{
    daemon_stop();
    scratch_remove();
}

/* ------------------------------------------------------------------ the lifecycle */

START_TEST(lifecycle)
{
    struct vagent *a = agent_on(node_uri("node.xml", "web"), 0);
    struct vagent_job j = job(VAGENT_OP_START, "vm1");
    j.xml = domain_xml("vm1");
    struct vagent_result r = run(a, &j);
    ck_assert_msg(r.rc == 0, "start: %d %s", r.rc, r.why);
    ck_assert_ptr_nonnull(strstr(r.why, "defined"));
    ck_assert_int_eq(r.vm.state, VAGENT_RUNNING);
    ck_assert(r.vm.persistent);
    ck_assert(vagent_connected(a));
    ck_assert_msg(seen.n > 0 && seen.ev[0].kind == VAGENT_CONN && seen.ev[0].connected, "first a connection report");
    const struct vagent_result *e = saw(a, "vm1", VAGENT_EV_STARTED);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->vm.state, VAGENT_RUNNING);
    ck_assert_str_eq(e->vm.uuid, r.vm.uuid);

    j = job(VAGENT_OP_QUERY, "vm1");
    r = run(a, &j);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.vm.state, VAGENT_RUNNING);
    ck_assert_uint_eq(r.vm.mem_kib, 128 * 1024);
    ck_assert_int_eq(r.vm.vcpus, 2);
    ck_assert_int_eq((int)strlen(r.vm.uuid), 36);

    j = job(VAGENT_OP_LIST, "");
    r = run(a, &j);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.nvms, 2);
    ck_assert_ptr_nonnull(find_vm(&r, "web"));
    ck_assert_int_eq(find_vm(&r, "vm1")->state, VAGENT_RUNNING);
    ck_assert_int_eq(find_vm(&r, "web")->state, VAGENT_RUNNING);
    vagent_result_free(&r);
    ck_assert_ptr_null(r.vms);

    j = job(VAGENT_OP_STOP, "vm1");
    r = run(a, &j);
    ck_assert_msg(r.rc == 0, "stop: %s", r.why);
    ck_assert_int_eq(r.vm.state, VAGENT_SHUTOFF);
    e = saw(a, "vm1", VAGENT_EV_STOPPED);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->vm.state, VAGENT_SHUTOFF);
    ck_assert_int_eq(e->detail, VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN);
    ck_assert_str_eq(e->why, "libvirt: stopped (shut down)");
    r = run(a, &j);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_ptr_nonnull(strstr(r.why, "already stopped"));

    /* defined now: no XML needed */
    j = job(VAGENT_OP_START, "vm1");
    r = run(a, &j);
    ck_assert_msg(r.rc == 0, "start again: %s", r.why);
    ck_assert_int_eq(r.vm.state, VAGENT_RUNNING);
    r = run(a, &j);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_ptr_nonnull(strstr(r.why, "already running"));

    seen.n = 0;
    j = job(VAGENT_OP_DESTROY, "vm1");
    r = run(a, &j);
    ck_assert_msg(r.rc == 0, "destroy: %s", r.why);
    ck_assert_int_eq(r.vm.state, VAGENT_SHUTOFF);
    ck_assert(saw(a, "vm1", VAGENT_EV_STOPPED));
    bool destroyed = false;
    for (int i = 0; i < seen.n; i++)
        destroyed |= seen.ev[i].kind == VAGENT_EVENT && seen.ev[i].detail == VIR_DOMAIN_EVENT_STOPPED_DESTROYED;
    ck_assert_msg(destroyed, "the event's detail says destroyed");
    /* a different XML redefines a stopped domain */
    j = job(VAGENT_OP_START, "vm1");
    j.xml = "<domain type='test'><name>vm1</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>"
            "<os><type arch='x86_64'>hvm</type></os></domain>";
    r = run(a, &j);
    ck_assert_msg(r.rc == 0, "start with a new XML: %s", r.why);
    ck_assert_ptr_nonnull(strstr(r.why, "definition updated"));
    ck_assert_uint_eq(r.vm.mem_kib, 256 * 1024);
    ck_assert_int_eq(r.vm.vcpus, 1);
    vagent_free(a);
}
END_TEST

START_TEST(unknown_domain)
{
    struct vagent *a = agent_on(node_uri("node.xml", "web"), 0);
    static const enum vagent_op ops[] = {VAGENT_OP_QUERY, VAGENT_OP_STOP, VAGENT_OP_DESTROY, VAGENT_OP_START,
                                         VAGENT_OP_MIGRATE};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        struct vagent_job j = job(ops[i], "ghost");
        snprintf(j.dest_uri, sizeof j.dest_uri, "test:///default");
        struct vagent_result r = run(a, &j);
        ck_assert_msg(r.rc == -ENOENT, "%s ghost: %d %s", vagent_op_name(ops[i]), r.rc, r.why);
        ck_assert_int_eq(r.vm.state, VAGENT_ABSENT);
        ck_assert_msg(r.why[0], "a reason");
    }
    vagent_free(a);
}
END_TEST

/* `vigil vm import VM` without --xml: the defined domain's XML, in the
 * form the pool stores and vigil checks */
START_TEST(dumpxml)
{
    struct vagent *a = agent_on(node_uri("node.xml", "web"), 0);
    struct vagent_job j = job(VAGENT_OP_START, "vm1");
    j.xml = domain_xml("vm1");
    struct vagent_result r = run(a, &j);
    ck_assert_msg(r.rc == 0, "start: %s", r.why);

    j = job(VAGENT_OP_DUMPXML, "vm1");
    r = run(a, &j);
    ck_assert_msg(r.rc == 0, "dumpxml: %d %s", r.rc, r.why);
    ck_assert_ptr_nonnull(r.xml);
    char name[VAGENT_NAME_MAX], err[VAGENT_WHY_MAX];
    uint64_t mem = 0;
    int vcpus = 0;
    ck_assert_msg(vagent_xml_check(r.xml, strlen(r.xml), name, &mem, &vcpus, err, sizeof err) == 0, "%s: %s", err,
                  r.xml);
    ck_assert_str_eq(name, "vm1");
    ck_assert_uint_eq(mem, 128 * 1024);
    ck_assert_int_eq(vcpus, 2);
    ck_assert_ptr_nonnull(strstr(r.xml, r.vm.uuid)); /* the UUID it runs under */
    ck_assert_int_eq(r.vm.state, VAGENT_RUNNING);
    /* the inactive form: no runtime id of the running guest */
    ck_assert_msg(!strstr(r.xml, "<domain type='test' id="), "runtime id in %s", r.xml);
    vagent_result_free(&r);
    ck_assert_ptr_null(r.xml);

    /* defined, not running: same */
    j = job(VAGENT_OP_DESTROY, "vm1");
    r = run(a, &j);
    ck_assert_int_eq(r.rc, 0);
    j = job(VAGENT_OP_DUMPXML, "vm1");
    r = run(a, &j);
    ck_assert_msg(r.rc == 0 && r.xml, "dumpxml of a stopped domain: %s", r.why);
    ck_assert_int_eq(vagent_xml_check(r.xml, strlen(r.xml), name, NULL, NULL, err, sizeof err), 0);
    vagent_result_free(&r);

    /* unknown: -ENOENT, no XML */
    j = job(VAGENT_OP_DUMPXML, "ghost");
    r = run(a, &j);
    ck_assert_int_eq(r.rc, -ENOENT);
    ck_assert_ptr_null(r.xml);
    ck_assert_int_eq(r.vm.state, VAGENT_ABSENT);
    ck_assert_msg(strstr(r.why, "ghost"), "the reason names it: %s", r.why);
    vagent_free(a);
}
END_TEST

static void listed(struct vagent *a, const char *name, bool want)
{
    struct vagent_job j = job(VAGENT_OP_LIST, "");
    struct vagent_result r = run(a, &j);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_msg((find_vm(&r, name) != NULL) == want, "%s %s listed", name, want ? "not" : "still");
    vagent_result_free(&r);
}

START_TEST(bad_xml)
{
    struct vagent *a = agent_on(node_uri("node.xml", "web"), 0);
    char err[VAGENT_WHY_MAX] = "";
    struct vagent_job j = job(VAGENT_OP_START, "vm1");
    j.xml = "<domain type='test'><name>vm1</name><memory>-5</memory></domain>";
    ck_assert_int_eq(vagent_submit(a, &j, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "<memory> is not a whole number"), "reason: %s", err);
    j.xml = domain_xml("other");
    ck_assert_int_eq(vagent_submit(a, &j, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "names the domain 'other'"), "reason: %s", err);
    /* well-formed for vigil, refused by libvirt: the job says why, nothing is defined */
    j.xml = "<domain type='test'><name>vm1</name><memory>65536</memory><os><type>hvm</type></os>"
            "<on_poweroff>explode</on_poweroff></domain>";
    struct vagent_result r = run(a, &j);
    ck_assert_msg(r.rc == -EINVAL, "libvirt's refusal: %d %s", r.rc, r.why);
    ck_assert_msg(strstr(r.why, "define"), "reason: %s", r.why);
    ck_assert_int_eq(r.vm.state, VAGENT_ABSENT);
    listed(a, "vm1", false);
    /* bad jobs */
    j = job(VAGENT_OP_QUERY, "a/b");
    ck_assert_int_eq(vagent_submit(a, &j, err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "domain name"));
    j = job(VAGENT_OP_MIGRATE, "web");
    ck_assert_int_eq(vagent_submit(a, &j, err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "destination"));
    j = job(VAGENT_OP_START, "web");
    j.npeers = VAGENT_MAX_PEERS + 1;
    ck_assert_int_eq(vagent_submit(a, &j, err, sizeof err), -EINVAL);
    j.npeers = 1;
    ck_assert_int_eq(vagent_submit(a, &j, err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "peer 1"));
    j = job((enum vagent_op)42, "web");
    ck_assert_int_eq(vagent_submit(a, &j, err, sizeof err), -EINVAL);
    vagent_free(a);
}
END_TEST

/* ------------------------------------------------------------------ a hypervisor that never answers */

struct hung {
    int lfd, fds[64], nfds;
    volatile int stop;
    pthread_t t;
    char path[160];
};

static void *hung_run(void *arg)
{
    struct hung *h = arg;
    while (!h->stop) {
        struct pollfd p = {.fd = h->lfd, .events = POLLIN};
        if (poll(&p, 1, 100) == 1) {
            int fd = accept(h->lfd, NULL, NULL);
            if (fd >= 0 && h->nfds < 64)
                h->fds[h->nfds++] = fd; /* held open, never read, never answered */
            else if (fd >= 0)
                close(fd);
        }
    }
    return NULL;
}

static void hung_start(struct hung *h, const char *file)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memset(h, 0, sizeof *h);
    snprintf(h->path, sizeof h->path, "%s", scratch_path(file));
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", h->path);
    h->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(h->lfd, 0);
    ck_assert_int_eq(bind(h->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(h->lfd, 16), 0);
    ck_assert_int_eq(pthread_create(&h->t, NULL, hung_run, h), 0);
}

static void hung_stop(struct hung *h)
{
    h->stop = 1;
    pthread_join(h->t, NULL);
    for (int i = 0; i < h->nfds; i++)
        close(h->fds[i]);
    close(h->lfd);
}

static const char *hung_uri(const struct hung *h)
{
    static char uri[VAGENT_URI_MAX];
    snprintf(uri, sizeof uri, "qemu+unix:///system?socket=%s", h->path);
    return uri;
}

START_TEST(double_start)
{
    struct hung h;
    hung_start(&h, "hung.sock");
    struct vagent *a = agent_on(node_uri("node.xml", "web"), 0);
    /* vm2 runs on the peer: refused, named, nothing defined here */
    const char *peer = node_uri("peer.xml", "vm2");
    struct vagent_job j = job(VAGENT_OP_START, "vm2");
    j.npeers = 2;
    snprintf(j.peer_uri[0], VAGENT_URI_MAX, "%s", node_uri("empty-peer.xml", "web"));
    snprintf(j.peer_uri[1], VAGENT_URI_MAX, "%s", peer);
    j.xml = domain_xml("vm2");
    struct vagent_result r = run(a, &j);
    ck_assert_msg(r.rc == -EEXIST, "running on a peer: %d %s", r.rc, r.why);
    ck_assert_msg(strstr(r.why, peer), "names the peer: %s", r.why);
    listed(a, "vm2", false);

    /* vm3: one peer has no such domain, one refuses connections, one never
     * answers: started, with the unreachable ones noted */
    char nosock[VAGENT_URI_MAX];
    snprintf(nosock, sizeof nosock, "qemu+unix:///system?socket=%s", scratch_path("nobody.sock"));
    j = job(VAGENT_OP_START, "vm3");
    j.xml = domain_xml("vm3");
    j.timeout_ms = 8000;
    j.npeers = 3;
    snprintf(j.peer_uri[0], VAGENT_URI_MAX, "%s", peer);
    snprintf(j.peer_uri[1], VAGENT_URI_MAX, "%s", hung_uri(&h));
    snprintf(j.peer_uri[2], VAGENT_URI_MAX, "%s", nosock);
    r = run(a, &j);
    ck_assert_msg(r.rc == 0, "start with unreachable peers: %d %s", r.rc, r.why);
    ck_assert_int_eq(r.vm.state, VAGENT_RUNNING);
    ck_assert_msg(strstr(r.why, nosock) && strstr(r.why, "unreachable"), "notes the refusing peer: %s", r.why);
    ck_assert_msg(strstr(r.why, hung_uri(&h)) && strstr(r.why, "no answer in time"), "notes the hung peer: %s",
                  r.why);
    vagent_free(a);
    hung_stop(&h);
}
END_TEST

START_TEST(migrate_fails_cleanly)
{
    struct vagent *a = agent_on(node_uri("node.xml", "web"), 0);
    struct vagent_job j = job(VAGENT_OP_MIGRATE, "web");
    snprintf(j.dest_uri, sizeof j.dest_uri, "%s", node_uri("dest.xml", "other"));
    j.bandwidth_mib = 100;
    j.max_downtime_ms = 50;
    struct vagent_result r = run(a, &j);
    ck_assert_msg(r.rc < 0 && r.rc != -ETIMEDOUT, "the test driver cannot migrate: %d %s", r.rc, r.why);
    ck_assert_msg(strstr(r.why, "stays on the source, running"), "says where the VM is: %s", r.why);
    ck_assert_int_eq(r.vm.state, VAGENT_RUNNING);
    j = job(VAGENT_OP_QUERY, "web");
    r = run(a, &j);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.vm.state, VAGENT_RUNNING);
    /* a stopped VM is not migrated */
    j = job(VAGENT_OP_DESTROY, "web");
    ck_assert_int_eq(run(a, &j).rc, 0);
    j = job(VAGENT_OP_MIGRATE, "web");
    snprintf(j.dest_uri, sizeof j.dest_uri, "test:///default");
    r = run(a, &j);
    ck_assert_int_eq(r.rc, -EINVAL);
    ck_assert_ptr_nonnull(strstr(r.why, "not running"));
    vagent_free(a);
}
END_TEST

START_TEST(many_jobs_at_once)
{
    /* 40 jobs on 8 domains submitted at once: one job per domain at a time,
     * every result arrives once, and the domains end as the last job says */
    struct vagent *a = agent_on(node_uri("node.xml", "web"), 0);
    char err[VAGENT_WHY_MAX];
    int got[41] = {0};
    for (int i = 0; i < 40; i++) {
        char name[16];
        snprintf(name, sizeof name, "m%d", i % 8);
        struct vagent_job j = job(i < 8 ? VAGENT_OP_START : i < 32 ? VAGENT_OP_QUERY : VAGENT_OP_DESTROY, name);
        j.xml = i < 8 ? domain_xml(name) : NULL;
        j.tag = 1000 + (uint64_t)i;
        ck_assert_int_eq(vagent_submit(a, &j, err, sizeof err), 0);
    }
    for (int n = 0; n < 40; n++) {
        struct vagent_result r;
        uint64_t until = mono_ms() + 30000;
        int ok = 0;
        while (!ok && mono_ms() < until) {
            struct pollfd p = {.fd = vagent_fd(a), .events = POLLIN};
            poll(&p, 1, 100);
            while (!ok && vagent_next(a, &r) == 1)
                ok = r.kind == VAGENT_RESULT;
        }
        ck_assert_msg(ok, "result %d of 40", n + 1);
        int i = (int)(r.tag - 1000);
        ck_assert(i >= 0 && i < 40);
        ck_assert_msg(!got[i]++, "tag %d twice", i);
        ck_assert_msg(r.rc == 0, "%s %s: %s", vagent_op_name(r.op), r.name, r.why);
        if (i < 8 || i >= 32)
            ck_assert_int_eq(r.vm.state, i < 8 ? VAGENT_RUNNING : VAGENT_SHUTOFF);
    }
    vagent_free(a);
}
END_TEST

START_TEST(hung_libvirtd)
{
    struct hung h;
    hung_start(&h, "libvirt-sock");
    uint64_t t0 = mono_ms();
    struct vagent *a = agent_on(hung_uri(&h), 1000);
    ck_assert_msg(mono_ms() - t0 < 1000, "vagent_new returns without waiting for the hypervisor");
    ck_assert(!vagent_connected(a));

    /* jobs end at their deadline, with the reason */
    struct vagent_job q = job(VAGENT_OP_QUERY, "vm1"), l = job(VAGENT_OP_LIST, "");
    q.timeout_ms = 1500;
    l.timeout_ms = 2500;
    t0 = mono_ms();
    struct vagent_result r = run(a, &q);
    uint64_t took = mono_ms() - t0;
    ck_assert_msg(r.rc == -ETIMEDOUT, "query: %d %s", r.rc, r.why);
    ck_assert_msg(took >= 1400, "not before its deadline (%llu ms)", (unsigned long long)took);
    ck_assert_msg(strstr(r.why, "not connected"), "says why: %s", r.why);
    r = run(a, &l);
    ck_assert_int_eq(r.rc, -ETIMEDOUT);
    ck_assert_ptr_null(r.vms);

    /* the connection attempt was reported as failing at connect_timeout_ms */
    bool down = false;
    for (int i = 0; i < seen.n; i++)
        down |= seen.ev[i].kind == VAGENT_CONN && !seen.ev[i].connected && strstr(seen.ev[i].why, "no answer");
    ck_assert_msg(down, "a VAGENT_CONN down result");
    ck_assert_msg(h.nfds == 1, "one connection attempt at a time (%d)", h.nfds);

    /* queued jobs and a hung attempt do not hold vagent_free */
    struct vagent_job s = job(VAGENT_OP_START, "vm1");
    char err[VAGENT_WHY_MAX];
    ck_assert_int_eq(vagent_submit(a, &s, err, sizeof err), 0);
    t0 = mono_ms();
    vagent_free(a);
    took = mono_ms() - t0;
    ck_assert_msg(took < 5000, "vagent_free returned after %llu ms", (unsigned long long)took);
    hung_stop(&h);
}
END_TEST

START_TEST(refused_libvirtd)
{
    /* nobody listens: jobs fail at once with the reason, not at their deadline */
    char uri[VAGENT_URI_MAX];
    snprintf(uri, sizeof uri, "qemu+unix:///system?socket=%s", scratch_path("nobody.sock"));
    struct vagent *a = agent_on(uri, 1000);
    struct vagent_job q = job(VAGENT_OP_QUERY, "vm1");
    q.timeout_ms = 20000;
    uint64_t t0 = mono_ms();
    struct vagent_result r = run(a, &q);
    ck_assert_msg(r.rc == -ECONNREFUSED, "query: %d %s", r.rc, r.why);
    ck_assert_msg(mono_ms() - t0 < 15000, "failed before the deadline");
    ck_assert_msg(strstr(r.why, "not connected"), "why: %s", r.why);
    ck_assert(!vagent_connected(a));
    vagent_free(a);
}
END_TEST

/* ------------------------------------------------------------------ a real libvirtd */

/* A private libvirtd serving its test driver on a unix socket of the
 * scratch directory: its own network and mount namespaces, tmpfs over /run
 * and libvirt's state directories, no driver modules (LIBVIRT_DRIVER_DIR
 * points at an empty directory), killed with the test process.  NULL (and
 * the reason printed) where that cannot run. */
static pid_t daemon_pid;

static const char *daemon_start(void)
{
    static char uri[VAGENT_URI_MAX];
    if (geteuid() != 0 || system("command -v libvirtd >/dev/null && command -v unshare >/dev/null") != 0) {
        printf("test_vagent: SKIP the libvirtd tests: they need root, libvirtd and unshare\n");
        return NULL;
    }
    mkdir(scratch_path("run"), 0700);
    mkdir(scratch_path("nodrv"), 0700);
    FILE *f = fopen(scratch_path("libvirtd.conf"), "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "unix_sock_dir = \"%s\"\nauth_unix_rw = \"none\"\nauth_unix_ro = \"none\"\n", scratch_path("run"));
    fprintf(f, "log_outputs = \"3:file:%s\"\n", scratch_path("libvirtd.log"));
    fclose(f);
    char conf[192], drv[192], sock[192];
    snprintf(conf, sizeof conf, "%s", scratch_path("libvirtd.conf"));
    snprintf(drv, sizeof drv, "%s", scratch_path("nodrv"));
    snprintf(sock, sizeof sock, "%s", scratch_path("run/libvirt-sock"));
    unlink(sock);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char cmd[512];
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setenv("LIBVIRT_DRIVER_DIR", drv, 1);
        snprintf(cmd, sizeof cmd,
                 "mount -t tmpfs tmpfs /run && for d in /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do "
                 "[ ! -d $d ] || mount -t tmpfs tmpfs $d || exit 1; done && exec libvirtd --config %s",
                 conf);
        execlp("unshare", "unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    daemon_pid = pid;
    struct stat st;
    for (int i = 0; i < 200 && stat(sock, &st) != 0; i++)
        usleep(50000);
    ck_assert_msg(stat(sock, &st) == 0, "libvirtd made no socket (see %s)", scratch_path("libvirtd.log"));
    snprintf(uri, sizeof uri, "test+unix:///default?socket=%s", sock);
    return uri;
}

static void daemon_stop(void)
{
    if (daemon_pid <= 0)
        return;
    kill(daemon_pid, SIGCONT);
    kill(daemon_pid, SIGTERM);
    waitpid(daemon_pid, NULL, 0);
    daemon_pid = 0;
}

/* waits up to ms for a VAGENT_CONN result saying `up` (and, if given, `why` in its reason) */
static bool saw_conn(struct vagent *a, bool up, const char *why, int ms)
{
    uint64_t until = mono_ms() + (uint64_t)ms;
    for (int from = 0;;) {
        for (; from < seen.n; from++)
            if (seen.ev[from].kind == VAGENT_CONN && seen.ev[from].connected == up &&
                (!why || strstr(seen.ev[from].why, why)))
                return true;
        if (mono_ms() >= until)
            return false;
        struct vagent_result none;
        drain(a, 0, 100, &none);
    }
}

START_TEST(daemon_hangs_and_comes_back)
{
    const char *uri = daemon_start();
    if (!uri)
        return;
    char err[VAGENT_WHY_MAX];
    struct vagent_opts o = {.uri = uri, .keepalive_interval_s = 1, .keepalive_count = 2, .connect_timeout_ms = 2000};
    struct vagent *a = vagent_new(&o, err, sizeof err);
    ck_assert_msg(a, "%s", err);
    ck_assert_msg(saw_conn(a, true, NULL, 10000), "connected to %s", uri);

    /* a job and its event, through libvirtd */
    struct vagent_job j = job(VAGENT_OP_DESTROY, "test");
    struct vagent_result r = run(a, &j);
    ck_assert_msg(r.rc == 0, "destroy: %s", r.why);
    ck_assert(saw(a, "test", VAGENT_EV_STOPPED));
    j = job(VAGENT_OP_START, "test");
    ck_assert_int_eq(run(a, &j).rc, 0);

    /* libvirtd hangs: a job stuck inside libvirt ends at its deadline;
     * keepalive notices and says so; back again, the agent reconnects */
    seen.n = 0;
    ck_assert_int_eq(kill(daemon_pid, SIGSTOP), 0);
    j = job(VAGENT_OP_QUERY, "test");
    j.timeout_ms = 1500;
    uint64_t t0 = mono_ms();
    r = run(a, &j);
    ck_assert_msg(r.rc == -ETIMEDOUT, "query on a hung libvirtd: %d %s", r.rc, r.why);
    ck_assert_msg(mono_ms() - t0 >= 1400, "not before its deadline");
    ck_assert_msg(saw_conn(a, false, "keepalive", 15000), "keepalive reported the hung libvirtd");
    ck_assert(!vagent_connected(a));
    ck_assert_int_eq(kill(daemon_pid, SIGCONT), 0);
    ck_assert_msg(saw_conn(a, true, NULL, 20000), "reconnected once libvirtd answers again");
    j = job(VAGENT_OP_QUERY, "test");
    r = run(a, &j);
    ck_assert_msg(r.rc == 0 && r.vm.state == VAGENT_RUNNING, "query after reconnect: %d %s", r.rc, r.why);

    /* libvirtd stops and starts again: end of file, refused attempts, reconnected */
    seen.n = 0;
    daemon_stop();
    ck_assert_msg(saw_conn(a, false, NULL, 10000), "the loss reported");
    j = job(VAGENT_OP_QUERY, "test");
    r = run(a, &j);
    ck_assert_msg(r.rc < 0 && r.rc != -ETIMEDOUT, "no libvirtd: failed at once, not at the deadline: %d %s", r.rc,
                  r.why);
    ck_assert(daemon_start());
    ck_assert_msg(saw_conn(a, true, NULL, 40000), "reconnected to the new libvirtd");
    j = job(VAGENT_OP_LIST, "");
    r = run(a, &j);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_ptr_nonnull(find_vm(&r, "test"));
    vagent_result_free(&r);

    /* hung again with a job inside libvirt: vagent_free does not wait for it */
    ck_assert_int_eq(kill(daemon_pid, SIGSTOP), 0);
    j = job(VAGENT_OP_LIST, "");
    j.timeout_ms = 30000;
    ck_assert_int_eq(vagent_submit(a, &j, err, sizeof err), 0);
    usleep(300000);
    t0 = mono_ms();
    vagent_free(a);
    uint64_t took = mono_ms() - t0;
    ck_assert_msg(took < 5000, "vagent_free returned after %llu ms", (unsigned long long)took);
    daemon_stop();
}
END_TEST

START_TEST(bad_options)
{
    char err[VAGENT_WHY_MAX] = "";
    struct vagent_opts o = {.workers = -1};
    ck_assert_ptr_null(vagent_new(&o, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "options"));
    o = (struct vagent_opts){.uri = ""};
    ck_assert_ptr_null(vagent_new(&o, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "uri"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vagent");
    TCase *pure = tcase_create("pure");
    tcase_add_test(pure, xml_good);
    tcase_add_test(pure, xml_bad);
    tcase_add_test(pure, event_mapping);
    suite_add_tcase(s, pure);
    TCase *lv = tcase_create("libvirt");
    tcase_add_checked_fixture(lv, setup, teardown);
    tcase_set_timeout(lv, 120);
    tcase_add_test(lv, lifecycle);
    tcase_add_test(lv, unknown_domain);
    tcase_add_test(lv, dumpxml);
    tcase_add_test(lv, bad_xml);
    tcase_add_test(lv, double_start);
    tcase_add_test(lv, migrate_fails_cleanly);
    tcase_add_test(lv, many_jobs_at_once);
    tcase_add_test(lv, hung_libvirtd);
    tcase_add_test(lv, refused_libvirtd);
    tcase_add_test(lv, bad_options);
    tcase_add_test(lv, daemon_hangs_and_comes_back);
    suite_add_tcase(s, lv);
    return vigil_run_suite(s);
}
