/* Fuzz target: the admin command parser (shared by the CLI and scenarios)
 * and the value parsers never crash and never accept garbage silently. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ha/ha.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ha_db db;
    static int init;
    if (!init) {
        ha_db_init(&db);
        struct ha_db_host h = {.mem_mb = 1024, .cpus = 2, .joined = true};
        strcpy(h.name, "h1");
        ha_db_add_host(&db, &h);
        strcpy(h.name, "h2");
        ha_db_add_host(&db, &h);
        struct ha_db_vm v = {.mem_mb = 512, .cpus = 1, .priority = 3};
        strcpy(v.name, "web1");
        ha_db_add_vm(&db, &v);
        init = 1;
    }
    if (size > 4096)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    char *argv[64];
    int argc = 0;
    char *save = NULL;
    for (char *w = strtok_r(text, " \n\t", &save); w && argc < 64; w = strtok_r(NULL, " \n\t", &save))
        argv[argc++] = w;
    struct ha_cmd cmd;
    char err[256];
    if (ha_cmd_parse(&db, argc, argv, &cmd, err, sizeof err) == 0) {
        if (cmd.type == HA_CMD_NONE)
            abort();
        if (cmd.vm >= db.nvms || cmd.host >= db.nhosts)
            abort();
    } else if (!err[0])
        abort(); /* a refusal always says why */
    ha_ms ms;
    uint64_t mb;
    long n;
    if (argc) {
        if (ha_parse_duration(argv[0], &ms) == 0 && ms < 0)
            abort();
        if (ha_parse_size_mb(argv[0], &mb) == 0 && mb == 0)
            abort();
        if (ha_parse_int(argv[0], 0, 1000, &n) == 0 && (n < 0 || n > 1000))
            abort();
    }
    free(text);
    return 0;
}
