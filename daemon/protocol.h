/* The vigil <-> vigild IPC protocol (libqb IPC over a per-host socket). */
#ifndef VIGIL_PROTOCOL_H
#define VIGIL_PROTOCOL_H

#include <stdint.h>
#include <qb/qbipc_common.h>

#define VIGIL_IPC_NAME "vigil"
#define VIGIL_IPC_MAX (256 * 1024)

enum vigil_req_id { VIGIL_REQ_STATUS = 1 };
#define VIGIL_REQ_JSON 0x1u

struct vigil_req {
    struct qb_ipc_request_header hdr;
    uint32_t flags;
};

struct vigil_resp {
    struct qb_ipc_response_header hdr;
    char text[]; /* NUL-terminated */
};

#endif
