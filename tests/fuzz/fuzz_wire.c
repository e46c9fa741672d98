/* Fuzz target: the CPG message decoder of the replicated pool database.
 * Any bytes from the network are delivered to a synced replica of a
 * three-host pool as if a member sent them: nothing may crash, and the
 * database may change only through a well-formed change from the master
 * (tests/fuzz/corpus/wire-change-vm-xml is one: a VM imported with its
 * domain XML). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "membership/pooldb.h"
#include "membership/replica.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the replica's own STATE message, kept to complete its sync round */
static uint8_t state[64];
static size_t state_len;

static int fz_send(void *ctx, const void *m, size_t len)
{
    (void)ctx;
    if (len <= sizeof state && ((const uint8_t *)m)[3] == WIRE_STATE) {
        memcpy(state, m, len);
        state_len = len;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8 + 16 + POOLDB_CHANGE_MAX + 1)
        return 0;
    struct ha_db db;
    ha_db_init(&db);
    db.set.heartbeat_disk = false;
    for (int i = 0; i < 3; i++) {
        struct ha_change c = {.type = HA_CHG_HOST_ADD, .arg = i + 1, .mem_mb = 1024, .cpus = 2};
        c.name[0] = 'h', c.name[1] = (char)('1' + i);
        if (ha_db_apply(&db, &c) < 0)
            abort();
    }
    struct ha_change m = {.type = HA_CHG_MASTER, .host = 0};
    if (ha_db_apply(&db, &m) < 0)
        abort();
    struct replica_ops ops = {.send = fz_send};
    struct replica *r = replica_new(&db, 2, &ops);
    uint32_t members[3] = {1, 2, 3};
    replica_confchg(r, members, 3, 1);
    /* every member reports the same state: the round completes, and a
     * change from the master (node 1) is judged and applied */
    for (uint32_t n = 1; n <= 3; n++)
        replica_deliver(r, n, state, state_len);
    if (!replica_synced(r))
        abort();
    /* the first byte picks the sender, the rest is the message */
    replica_deliver(r, (uint32_t)(data[0] % 4), data + 1, size - 1);
    if (db.nhosts < 3 || db.nhosts > HA_MAX_HOSTS)
        abort();
    replica_free(r);
    ha_db_free(&db);
    return 0;
}
