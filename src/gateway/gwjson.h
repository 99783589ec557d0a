/* gwjson.h: small jansson helpers shared by the gateway's translators
 * (anthropic.c, anthropic_in.c): reference-stealing appends that report
 * out-of-memory as false, and typed field reads with defaults. Static
 * inline: each is a line or two. */
#ifndef HP_GATEWAY_GWJSON_H
#define HP_GATEWAY_GWJSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

static inline hp_err gwj_oom(hp_errbuf *eb)
{
    return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
}

/* Append / set a new reference; false on OOM (the reference is released
 * either way, as the jansson _new calls do). */
static inline bool gwj_push(json_t *arr, json_t *v)
{
    return v && json_array_append_new(arr, v) == 0;
}

static inline bool gwj_set(json_t *obj, const char *key, json_t *v)
{
    return v && json_object_set_new(obj, key, v) == 0;
}

/* A string field, or NULL when absent or not a string. */
static inline const char *gwj_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* An integer field, or def when absent or not an integer (usage counters
 * are optional and sometimes null). */
static inline int64_t gwj_int(const json_t *obj, const char *key, int64_t def)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

#endif
