/* agents/vxml.c: vagent_xml_check(), the gate a domain XML passes before the
 * pool stores it or the agent hands it to libvirt.  Pure (libxml2, no
 * connection), so vigil can refuse a bad XML at `vigil vm import` on any host
 * and the fuzzer can drive it alone.  Strict on purpose: libvirt accepts a
 * lot (and fills defaults in), but what vigil reads from the XML itself -- the
 * name it files the VM under, the memory and vCPUs the scheduler places by --
 * must be there exactly once and unambiguous.  No DTD, no entities, no
 * network: a stored XML is data, never a program. */
#include "agents/vagent.h"
#include "agents/vagent_int.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "ha/bytes.h"
#include "ha/ha.h"

#define VCPUS_MAX 4096

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;
static void xml_init(void) { xmlInitParser(); }

/* the only child element of `parent` called `name`: 1 found, 0 none, -1 two or more */
static int only_child(xmlNode *parent, const char *name, xmlNode **out)
{
    int n = 0;
    *out = NULL;
    for (xmlNode *c = parent->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0) {
            if (!*out)
                *out = c;
            n++;
        }
    return n > 1 ? -1 : n;
}

/* the element's text, trimmed of surrounding blanks, into buf; -1 when it
 * holds elements or is longer than the buffer */
static int text_of(xmlNode *e, char *buf, size_t len)
{
    size_t used = 0;
    for (xmlNode *c = e->children; c; c = c->next) {
        if (c->type == XML_COMMENT_NODE)
            continue;
        if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE)
            return -1;
        size_t n = strlen((const char *)c->content);
        if (used + n >= len)
            return -1;
        memcpy(buf + used, c->content, n);
        used += n;
    }
    buf[used] = 0;
    size_t s = 0;
    while (isspace((unsigned char)buf[s]))
        s++;
    while (used > s && isspace((unsigned char)buf[used - 1]))
        used--;
    memmove(buf, buf + s, used - s);
    buf[used - s] = 0;
    return 0;
}

/* a decimal count: digits only, no sign, no overflow */
static int decimal(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

/* libvirt's memory units (docs: formatdomain, "Memory Allocation"), in bytes */
static int unit_bytes(const char *u, uint64_t *mult)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {
        {"b", 1}, {"bytes", 1}, {"KB", 1000}, {"k", 1024}, {"KiB", 1024}, {"MB", 1000000}, {"M", 1 << 20},
        {"MiB", 1 << 20}, {"GB", 1000000000}, {"G", 1 << 30}, {"GiB", 1 << 30}, {"TB", 1000000000000ULL},
        {"T", 1ULL << 40}, {"TiB", 1ULL << 40},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(u, units[i].name) == 0) {
            *mult = units[i].mult;
            return 0;
        }
    return -1;
}

static bool uuid_ok(const char *s)
{
    /* 8-4-4-4-12 hex digits, or the 32 digits alone (libvirt takes both) */
    size_t n = strlen(s), hex = 0;
    for (size_t i = 0; i < n; i++) {
        if (isxdigit((unsigned char)s[i]))
            hex++;
        else if (s[i] != '-' || n != 36 || (i != 8 && i != 13 && i != 18 && i != 23))
            return false;
    }
    return hex == 32 && (n == 32 || n == 36);
}

static int check_doc(xmlDoc *doc, char name[VAGENT_NAME_MAX], uint64_t *mem_kib, int *vcpus, char *err,
                     size_t errlen)
{
    char text[128];
    xmlNode *root = xmlDocGetRootElement(doc), *e;

    if (doc->intSubset || doc->extSubset)
        return errf(err, errlen, -EINVAL, "a DOCTYPE is not allowed in a domain XML");
    if (!root || strcmp((const char *)root->name, "domain") != 0)
        return errf(err, errlen, -EINVAL, "the root element is <%s>, not <domain>", root ? (const char *)root->name : "");
    if (root->ns)
        return errf(err, errlen, -EINVAL, "line %d: <domain> must not be in a namespace", root->line);
    xmlChar *type = xmlGetNoNsProp(root, (const xmlChar *)"type");
    bool typed = type && *type;
    xmlFree(type);
    if (!typed)
        return errf(err, errlen, -EINVAL, "line %d: <domain> has no type attribute (e.g. type='kvm')", root->line);

    int n = only_child(root, "name", &e);
    if (n <= 0)
        return errf(err, errlen, -EINVAL, n ? "more than one <name>" : "no <name>");
    if (text_of(e, text, sizeof text) < 0 || !ha_name_valid(text))
        return errf(err, errlen, -EINVAL,
                    "line %d: <name> must be 1 to %d letters, digits, '.', '_' or '-'", e->line, VAGENT_NAME_MAX - 1);
    snprintf(name, VAGENT_NAME_MAX, "%s", text);

    n = only_child(root, "uuid", &e);
    if (n < 0)
        return errf(err, errlen, -EINVAL, "more than one <uuid>");
    if (n == 1 && (text_of(e, text, sizeof text) < 0 || !uuid_ok(text)))
        return errf(err, errlen, -EINVAL, "line %d: <uuid> is not a UUID", e->line);

    n = only_child(root, "memory", &e);
    if (n <= 0)
        return errf(err, errlen, -EINVAL, n ? "more than one <memory>" : "no <memory>");
    uint64_t v, mult = 1024;
    if (text_of(e, text, sizeof text) < 0 || decimal(text, &v) < 0)
        return errf(err, errlen, -EINVAL, "line %d: <memory> is not a whole number", e->line);
    xmlChar *unit = xmlGetNoNsProp(e, (const xmlChar *)"unit");
    int bad_unit = unit && unit_bytes((const char *)unit, &mult) < 0;
    if (bad_unit)
        errf(err, errlen, -EINVAL, "line %d: <memory unit='%.32s'>: unknown unit", e->line, (const char *)unit);
    xmlFree(unit);
    if (bad_unit)
        return -EINVAL;
    if (v > UINT64_MAX / mult)
        return errf(err, errlen, -EINVAL, "line %d: <memory> is too large", e->line);
    uint64_t bytes = v * mult;
    if (bytes == 0)
        return errf(err, errlen, -EINVAL, "line %d: <memory> is 0", e->line);
    *mem_kib = bytes / 1024 + (bytes % 1024 != 0); /* libvirt rounds up to whole KiB; so do we */

    n = only_child(root, "vcpu", &e);
    if (n < 0)
        return errf(err, errlen, -EINVAL, "more than one <vcpu>");
    *vcpus = 1; /* libvirt's default */
    if (n == 1) {
        if (text_of(e, text, sizeof text) < 0 || decimal(text, &v) < 0 || v == 0 || v > VCPUS_MAX)
            return errf(err, errlen, -EINVAL, "line %d: <vcpu> must be a count from 1 to %d", e->line, VCPUS_MAX);
        *vcpus = (int)v;
    }
    return 0;
}

int vagent_xml_check(const char *xml, size_t len, char name[VAGENT_NAME_MAX], uint64_t *mem_kib, int *vcpus,
                     char *err, size_t errlen)
{
    char n[VAGENT_NAME_MAX] = "";
    uint64_t mem = 0;
    int cpus = 0;

    if (err && errlen)
        err[0] = 0;
    if (!xml || len == 0)
        return errf(err, errlen, -EINVAL, "empty domain XML");
    if (len > VAGENT_XML_MAX)
        return errf(err, errlen, -EINVAL, "domain XML of %zu bytes (at most %d)", len, VAGENT_XML_MAX);
    if (memchr(xml, 0, len))
        return errf(err, errlen, -EINVAL, "a NUL byte inside the domain XML");
    pthread_once(&xml_once, xml_init);

    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (!ctxt)
        return errf(err, errlen, -ENOMEM, "out of memory");
    xmlDoc *doc = xmlCtxtReadMemory(ctxt, xml, (int)len, "domain.xml", NULL,
                                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
    int rc;
    if (!doc) {
        const xmlError *e = xmlCtxtGetLastError(ctxt);
        char msg[160];
        snprintf(msg, sizeof msg, "%s", e && e->message ? e->message : "not well-formed");
        msg[strcspn(msg, "\n")] = 0;
        rc = errf(err, errlen, -EINVAL, "not well-formed XML: line %d: %s", e ? e->line : 0, msg);
    } else {
        rc = check_doc(doc, n, &mem, &cpus, err, errlen);
        xmlFreeDoc(doc);
    }
    xmlFreeParserCtxt(ctxt);
    if (rc < 0)
        return rc;
    if (name)
        memcpy(name, n, VAGENT_NAME_MAX);
    if (mem_kib)
        *mem_kib = mem;
    if (vcpus)
        *vcpus = cpus;
    return 0;
}

char *vagent_xml_with_uuid(const char *xml, const char *uuid)
{
    pthread_once(&xml_once, xml_init);
    xmlDoc *doc = xmlReadMemory(xml, (int)strnlen(xml, VAGENT_XML_MAX + 1), "domain.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL, *e;
    char *out = NULL;
    if (!root || only_child(root, "uuid", &e) != 0 || !uuid_ok(uuid)) {
        xmlFreeDoc(doc);
        return NULL;
    }
    if (xmlNewTextChild(root, NULL, (const xmlChar *)"uuid", (const xmlChar *)uuid)) {
        xmlChar *mem = NULL;
        int len = 0;
        xmlDocDumpMemory(doc, &mem, &len);
        if (mem)
            out = strndup((const char *)mem, (size_t)len);
        xmlFree(mem);
    }
    xmlFreeDoc(doc);
    return out;
}
