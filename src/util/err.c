/* err.c: formatting for the error vocabulary in err.h. */
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>

hp_err hp_errf(hp_errbuf *eb, hp_err code, const char *fmt, ...)
{
    if (eb) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(eb->msg, sizeof eb->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* A switch with no default, so -Wall flags a code without a message. */
const char *hp_strerror(hp_err code)
{
    switch (code) {
    case HP_OK: return "ok";
    case HP_ERR_NOMEM: return "out of memory";
    case HP_ERR_IO: return "i/o error";
    case HP_ERR_FORMAT: return "format error";
    case HP_ERR_UNSUPPORTED: return "unsupported";
    case HP_ERR_INVALID: return "invalid argument";
    case HP_ERR_RANGE: return "out of range";
    case HP_ERR_NOT_FOUND: return "not found";
    case HP_ERR_TOO_LARGE: return "too large";
    case HP_ERR_CANCELLED: return "cancelled";
    case HP_ERR_AGAIN: return "try again";
    case HP_ERR_DECLINED: return "declined";
    case HP_ERR_INTERNAL: return "internal error";
    }
    return "unknown error";
}
