/* fencing/ipmi.c: IPMI 2.0 lanplus (RMCP+) power control through FreeIPMI's
 * libfreeipmi: one session per call, privilege ADMIN, cipher suite from the
 * device (default 3).  `off` and `on` poll the chassis status until the BMC
 * reports the wanted state or the time is up. */
#include "fencing/fence_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <freeipmi/freeipmi.h>

struct ipmi_conn {
    ipmi_ctx_t ctx;
    const struct fence_device *d;
    char where[96];   /* "10.99.1.2:623" */
    long deadline;
};

static long left_ms(const struct ipmi_conn *c)
{
    return c->deadline - fence_now_ms();
}

/* maps a libfreeipmi error to -errno and one line */
static int ipmi_error(struct ipmi_conn *c, const char *doing, char *why, size_t whylen)
{
    int saved = errno, e = ipmi_ctx_errnum(c->ctx);
    long total = c->d->timeout_ms;
    switch (e) {
    case IPMI_ERR_USERNAME_INVALID:
    case IPMI_ERR_PASSWORD_INVALID:
    case IPMI_ERR_K_G_INVALID:
    case IPMI_ERR_PASSWORD_VERIFICATION_TIMEOUT:
        fence_setf(why, whylen, "BMC %s: authentication failed (wrong user or password)", c->where);
        return -EACCES;
    case IPMI_ERR_PRIVILEGE_LEVEL_INSUFFICIENT:
    case IPMI_ERR_PRIVILEGE_LEVEL_CANNOT_BE_OBTAINED:
        fence_setf(why, whylen, "BMC %s: user '%s' cannot obtain ADMIN privilege", c->where, c->d->user);
        return -EPERM;
    case IPMI_ERR_CIPHER_SUITE_ID_UNAVAILABLE:
        fence_setf(why, whylen, "BMC %s: cipher suite %d is not available on this BMC", c->where,
                   c->d->cipher ? c->d->cipher : 3);
        return -EPROTONOSUPPORT;
    case IPMI_ERR_IPMI_2_0_UNAVAILABLE:
        fence_setf(why, whylen, "BMC %s does not speak IPMI 2.0 (lanplus)", c->where);
        return -EPROTONOSUPPORT;
    case IPMI_ERR_CONNECTION_TIMEOUT:
    case IPMI_ERR_SESSION_TIMEOUT:
    case IPMI_ERR_MESSAGE_TIMEOUT:
        fence_setf(why, whylen, "BMC %s did not answer within %g s%s%s", c->where, (double)total / 1000.0,
                   *doing ? " while " : "", doing);
        return -ETIMEDOUT;
    case IPMI_ERR_HOSTNAME_INVALID:
        fence_setf(why, whylen, "BMC address '%s' is not valid", c->d->address);
        return -EINVAL;
    case IPMI_ERR_SYSTEM_ERROR:
        fence_setf(why, whylen, "BMC %s cannot be reached (%s)", c->where, strerror(saved));
        return -EHOSTUNREACH;
    case IPMI_ERR_BMC_BUSY:
        fence_setf(why, whylen, "BMC %s is busy", c->where);
        return -EBUSY;
    default:
        fence_setf(why, whylen, "BMC %s: %s%s%s", c->where, ipmi_ctx_errormsg(c->ctx),
                   *doing ? " while " : "", doing);
        return -EIO;
    }
}

static int get_power(struct ipmi_conn *c, enum fence_power *st, char *why, size_t whylen)
{
    fiid_obj_t rs = fiid_obj_create(tmpl_cmd_get_chassis_status_rs);
    uint64_t on = 0;
    int rc = 0;
    if (!rs) {
        fence_setf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    if (ipmi_cmd_get_chassis_status(c->ctx, rs) < 0)
        rc = ipmi_error(c, "reading the power state", why, whylen);
    else if (fiid_obj_get(rs, "current_power_state.power_is_on", &on) < 0) {
        fence_setf(why, whylen, "BMC %s: no power state in its chassis status", c->where);
        rc = -EIO;
    } else
        *st = on ? FENCE_POWER_ON : FENCE_POWER_OFF;
    fiid_obj_destroy(rs);
    return rc;
}

static int chassis_control(struct ipmi_conn *c, uint8_t what, const char *doing, char *why, size_t whylen)
{
    fiid_obj_t rs = fiid_obj_create(tmpl_cmd_chassis_control_rs);
    int rc = 0;
    if (!rs) {
        fence_setf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    if (ipmi_cmd_chassis_control(c->ctx, what, rs) < 0)
        rc = ipmi_error(c, doing, why, whylen);
    fiid_obj_destroy(rs);
    return rc;
}

/* polls until the wanted state or the deadline */
static int wait_power(struct ipmi_conn *c, enum fence_power want, enum fence_power *st, char *why, size_t whylen)
{
    int rc;
    for (;;) {
        rc = get_power(c, st, why, whylen);
        if (rc == 0 && *st == want)
            return 0;
        if (rc && rc != -EBUSY)
            return rc;
        if (left_ms(c) <= 0) {
            fence_setf(why, whylen, "BMC %s still reports the host %s after %.1f s", c->where,
                       fence_power_name(*st), (double)c->d->timeout_ms / 1000.0);
            return -ETIMEDOUT;
        }
        fence_sleep_ms(left_ms(c) < 100 ? left_ms(c) : 100);
    }
}

/* off or on: nothing to do when the BMC reports it already, else the
 * chassis control, then the poll until the BMC reports it */
static int power_to(struct ipmi_conn *c, enum fence_power want, uint8_t ctl, const char *doing,
                    enum fence_power *st, char *why, size_t whylen)
{
    int rc;
    if (*st == want) {
        fence_setf(why, whylen, "BMC %s reports the host %s already", c->where, fence_power_name(want));
        return 0;
    }
    rc = chassis_control(c, ctl, doing, why, whylen);
    if (rc == 0 && (rc = wait_power(c, want, st, why, whylen)) == 0)
        fence_setf(why, whylen, "BMC %s reports the host %s", c->where, fence_power_name(want));
    return rc;
}

int fence_ipmi_run(const struct fence_device *d, enum fence_action a, int timeout_ms,
                   enum fence_power *st, char *why, size_t whylen)
{
    struct ipmi_conn c = { .d = d };
    struct fence_device dd = *d;
    char host[96];
    int port = d->port ? d->port : 623, rc;
    unsigned int session_ms, retrans_ms;

    dd.timeout_ms = timeout_ms;
    c.d = &dd;
    c.deadline = fence_now_ms() + timeout_ms;
    snprintf(c.where, sizeof c.where, "%s:%d", d->address, port);
    /* libfreeipmi takes "host:port" for a port other than 623 */
    if (port == 623)
        snprintf(host, sizeof host, "%s", d->address);
    else
        snprintf(host, sizeof host, "%s:%d", d->address, port);
    session_ms = (unsigned int)timeout_ms;
    retrans_ms = session_ms / 5;
    if (retrans_ms < 50)
        retrans_ms = 50;
    if (retrans_ms > 500)
        retrans_ms = 500;
    if (retrans_ms >= session_ms)
        session_ms = retrans_ms + 1;

    c.ctx = ipmi_ctx_create();
    if (!c.ctx) {
        fence_setf(why, whylen, "cannot create an IPMI context (out of memory)");
        return -ENOMEM;
    }
    /* OPEN_SESSION_PRIVILEGE: ask for ADMIN in the open-session request
     * itself; some BMCs (and ipmi_sim) refuse a session otherwise */
    if (ipmi_ctx_open_outofband_2_0(c.ctx, host, d->user, d->password, NULL, 0, IPMI_PRIVILEGE_LEVEL_ADMIN,
                                    (uint8_t)(d->cipher ? d->cipher : 3), session_ms, retrans_ms,
                                    IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_OPEN_SESSION_PRIVILEGE, 0) < 0) {
        rc = ipmi_error(&c, "", why, whylen);
        ipmi_ctx_destroy(c.ctx);
        return rc;
    }
    rc = get_power(&c, st, why, whylen);
    if (rc)
        goto out;
    switch (a) {
    case FENCE_STATUS:
        fence_setf(why, whylen, "BMC %s reports the host %s", c.where, fence_power_name(*st));
        break;
    case FENCE_OFF:
        rc = power_to(&c, FENCE_POWER_OFF, IPMI_CHASSIS_CONTROL_POWER_DOWN, "powering off", st, why, whylen);
        break;
    case FENCE_ON:
        rc = power_to(&c, FENCE_POWER_ON, IPMI_CHASSIS_CONTROL_POWER_UP, "powering on", st, why, whylen);
        break;
    case FENCE_CYCLE:
        /* a power cycle of a host that is off does nothing on most BMCs */
        rc = chassis_control(&c, *st == FENCE_POWER_OFF ? IPMI_CHASSIS_CONTROL_POWER_UP : IPMI_CHASSIS_CONTROL_POWER_CYCLE,
                             "power cycling", why, whylen);
        if (rc == 0 && (rc = wait_power(&c, FENCE_POWER_ON, st, why, whylen)) == 0)
            fence_setf(why, whylen, "BMC %s cycled the host; it reports it on", c.where);
        break;
    }
out:
    ipmi_ctx_close(c.ctx);
    ipmi_ctx_destroy(c.ctx);
    return rc;
}
