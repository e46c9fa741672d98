/* agents/vagent_int.h: what tests/unit/test_vagent.c checks of the agent's
 * insides that no libvirt driver here can produce (the test driver never
 * crashes a guest, QEMU is not in the unit tests), and what vagent.c uses of
 * vxml.c beyond the public check. */
#ifndef VIGIL_VAGENT_INT_H
#define VIGIL_VAGENT_INT_H

#include "agents/vagent.h"

/* libvirt's lifecycle event (virDomainEventType) and detail -> ours */
enum vagent_ev vagent_map_event(int event, int detail);

/* the XML with <uuid>uuid</uuid> added when it has none (a stored XML
 * without one redefines a domain here under the UUID it already has);
 * malloc'd, NULL when it already has one or cannot be read */
char *vagent_xml_with_uuid(const char *xml, const char *uuid);

#endif
