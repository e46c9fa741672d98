/* Fuzz target: the scenario parser must reject or accept any bytes without
 * crashing; an accepted scenario must also run to its end (bounded). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    struct scenario s;
    char err[1024];
    if (scenario_parse("fuzz", text, &s, err, sizeof err) == 0) {
        /* keep runs short: the parser is the target, the run a sanity check */
        if (s.end <= 120000 && s.db.nvms <= 200 && s.nev <= 200) {
            FILE *devnull = fopen("/dev/null", "w");
            struct sim_opts o = {.quiet = true};
            struct sim_result r;
            if (devnull) {
                sim_run(&s, &o, devnull, &r);
                fclose(devnull);
            }
        }
        scenario_free(&s);
    } else if (strncmp(err, "fuzz:", 5) != 0) {
        abort(); /* every parse error names the file and line */
    }
    free(text);
    return 0;
}
