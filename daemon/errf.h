/* Error messages for functions that return -errno and fill the caller's
 * err buffer:  return errf(err, errlen, -EINVAL, "host %s: ...", name);
 * err may be NULL or errlen 0 (then only rc is returned). */
#ifndef VIGIL_ERRF_H
#define VIGIL_ERRF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

__attribute__((format(printf, 4, 5))) static inline int errf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

#endif
