/* fencing/fence_int.h: shared between the files of fencing/ only */
#ifndef VIGIL_FENCE_INT_H
#define VIGIL_FENCE_INT_H

#include "fencing/fence.h"

__attribute__((format(printf, 1, 2))) void fence_logf(const char *fmt, ...);
__attribute__((format(printf, 3, 4))) void fence_setf(char *why, size_t len, const char *fmt, ...);
long fence_now_ms(void);
void fence_sleep_ms(long ms);

int fence_ipmi_run(const struct fence_device *d, enum fence_action a, int timeout_ms,
                   enum fence_power *st, char *why, size_t whylen);
int fence_agent_run(const struct fence_device *d, enum fence_action a, int timeout_ms,
                    enum fence_power *st, char *why, size_t whylen);
int fence_scsi_run(const struct fence_device *d, enum fence_action a, int timeout_ms,
                   enum fence_power *st, char *why, size_t whylen);

#endif
