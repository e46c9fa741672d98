/* The vigil <-> vigild IPC protocol (libqb IPC over a per-host socket).
 *
 * One request, one response.  The request carries the command line as the
 * operator typed it (without "vigil" and without --json/--help, which become
 * flags); vigild parses it, so every command is judged by the same code
 * whether it was typed here or forwarded to the master. */
#ifndef VIGIL_PROTOCOL_H
#define VIGIL_PROTOCOL_H

#include <stdint.h>
#include <qb/qbipc_common.h>

#define VIGIL_IPC_NAME "vigil"
#define VIGIL_IPC_MAX (1024 * 1024)
#define VIGIL_ARGS_MAX (8192 + 256 * 1024) /* bytes of command words: vm import sends a domain XML
                                            * (HA_VM_XML_MAX) as one of them */

enum vigil_req_id { VIGIL_REQ_COMMAND = 2 };
#define VIGIL_REQ_JSON 0x1u

struct vigil_req {
    struct qb_ipc_request_header hdr;
    uint32_t flags;
    uint32_t argc;
    char args[]; /* argc NUL-terminated words, back to back */
};

struct vigil_resp {
    struct qb_ipc_response_header hdr;
    int32_t code; /* the exit code: 0 done, 1 refused, 2 usage, 3 unavailable */
    char text[];  /* NUL-terminated; stdout when code is 0, else stderr */
};

#endif
