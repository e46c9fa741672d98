/* pidns.h: which PID namespace vigild runs in, before a self-fence reboot. */
#include <stdio.h>
#include <string.h>

#include "pidns.h"

/* the value of "Key:" in a /proc status file, or "" */
static bool status_field(const char *path, const char *key, char *out, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[512];
    size_t kl = strlen(key);
    out[0] = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            char *v = line + kl + 1;
            v += strspn(v, " \t");
            v[strcspn(v, "\n")] = 0;
            snprintf(out, len, "%s", v);
            break;
        }
    fclose(f);
    return true;
}

bool pidns_initial(const char *proc, char *why, size_t len)
{
    char path[512], v[256];
    snprintf(path, sizeof path, "%s/self/status", proc);
    if (!status_field(path, "NSpid", v, sizeof v)) {
        snprintf(why, len, "%s is unreadable: in doubt, taken as the machine's initial PID namespace", path);
        return true;
    }
    int fields = 0;
    for (char *save = NULL, *t = strtok_r(v, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
        fields++;
    if (fields > 1) {
        snprintf(why, len, "NSpid in %s lists %d PIDs: a nested PID namespace", path, fields);
        return false;
    }
    char name[64] = "", ppid[32] = "";
    snprintf(path, sizeof path, "%s/2/status", proc);
    bool have2 = status_field(path, "Name", name, sizeof name) && status_field(path, "PPid", ppid, sizeof ppid);
    if (have2 && !strcmp(name, "kthreadd") && !strcmp(ppid, "0")) {
        snprintf(why, len, "PID 2 is kthreadd: the machine's initial PID namespace");
        return true;
    }
    if (have2)
        snprintf(why, len, "PID 2 is %s, not kthreadd: a nested PID namespace with its own /proc", name[0] ? name : "?");
    else
        snprintf(why, len, "there is no PID 2 (kthreadd): a nested PID namespace with its own /proc");
    return false;
}
