/* rcache.h: the gateway's exact-match response cache, and the assembly of
 * a streamed reply into the completion it stands for.
 *
 * Keys are SHA-256 digests of the route name plus the request body in a
 * normal form (keys sorted, compact, fields that do not change the answer
 * dropped: stream, stream_options, user, metadata). Only deterministic
 * requests are cacheable: temperature present and 0, n absent or 1.
 * Values are the non-streamed chat.completion / text_completion JSON.
 * Entries expire after a TTL and the least recently used go first when the
 * memory bound is reached. A streamed request is answered from an entry by
 * replaying it as chunks. Single-threaded (the gateway's loop). */
#ifndef HP_GATEWAY_RCACHE_H
#define HP_GATEWAY_RCACHE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define HP_RCACHE_KEY_LEN 32

typedef struct hp_rcache hp_rcache;

/* A cache holding at most max_bytes (keys, bodies and bookkeeping), each
 * entry living ttl_ms. NULL on OOM. */
hp_rcache *hp_rcache_new(size_t max_bytes, int64_t ttl_ms);
void hp_rcache_free(hp_rcache *c); /* accepts NULL */

/* The key of request `req` (parsed body) on route `route`. false when the
 * request is not cacheable (not temperature 0, n > 1, logprobs asked...). */
bool hp_rcache_key(const json_t *req, const char *route,
                   uint8_t key[HP_RCACHE_KEY_LEN]);

/* Store body (copied) under key at time now_ms; replaces an older entry.
 * An entry larger than the whole bound is not stored (HP_OK). */
hp_err hp_rcache_put(hp_rcache *c, const uint8_t key[HP_RCACHE_KEY_LEN],
                     const char *body, size_t len, int64_t now_ms);

/* The live entry for key, or NULL (absent or expired; expired entries are
 * dropped). The pointer is valid until the next put or free. */
const char *hp_rcache_get(hp_rcache *c, const uint8_t key[HP_RCACHE_KEY_LEN],
                          int64_t now_ms, size_t *len);

/* Entries and bytes held (for metrics and tests). */
size_t hp_rcache_count(const hp_rcache *c);
size_t hp_rcache_bytes(const hp_rcache *c);

/* Replay a stored chat.completion (or text_completion) as the SSE body a
 * streamed request would have received: a role chunk, one content chunk
 * per choice, the finish_reason chunk, a usage chunk when include_usage,
 * then "data: [DONE]". Each event is "data: {...}\n\n". malloc'd; *out_len
 * gets its length. NULL when body is not a completion object. */
char *hp_rcache_replay_sse(const char *body, size_t len, bool include_usage,
                           size_t *out_len);

/* Assembles the chunks of a streamed reply into the completion object a
 * non-streamed call returns: content and tool-call deltas concatenated per
 * choice index, the last finish_reason per choice, the usage chunk's usage,
 * id/created/model from the first chunk. */
typedef struct hp_chunk_asm {
    json_t *obj;      /* owns: the completion being built, or NULL */
    bool chat;        /* chat.completion.chunk (vs text_completion) */
    bool bad;         /* a chunk did not have the expected shape */
} hp_chunk_asm;

void hp_chunk_asm_init(hp_chunk_asm *a);
/* Add one chunk (borrowed). Marks the assembler bad on a shape it cannot
 * use, and ignores the chunk. */
void hp_chunk_asm_add(hp_chunk_asm *a, const json_t *chunk);
/* The assembled completion (new reference), or NULL when no chunk came or
 * the assembler is bad. */
json_t *hp_chunk_asm_result(const hp_chunk_asm *a);
void hp_chunk_asm_free(hp_chunk_asm *a);

#endif
