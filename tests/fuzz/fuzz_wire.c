/* Fuzz target: the CPG message decoder of the replicated pool database.
 * Any bytes from the network are delivered to a synced replica of a
 * three-host pool as if a member sent them: nothing may crash, and the
 * database may change only through a well-formed change from the master. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "membership/pooldb.h"
#include "membership/replica.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fz_send(void *ctx, const void *m, size_t len) { (void)ctx, (void)m, (void)len; return 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
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
    /* the first byte picks the sender, the rest is the message */
    replica_deliver(r, (uint32_t)(data[0] % 4), data + 1, size - 1);
    if (db.nhosts < 3 || db.nhosts > HA_MAX_HOSTS)
        abort();
    replica_free(r);
    ha_db_free(&db);
    return 0;
}
