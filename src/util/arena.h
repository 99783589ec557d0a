/* arena.h: bump allocator for per-request memory.
 *
 * Parsing, JSON scratch and token lists of one request come from its arena
 * and die together in hp_arena_free. Weights and KV cache never live here.
 * Not thread-safe: an arena belongs to one thread at a time. */
#ifndef HP_ARENA_H
#define HP_ARENA_H

#include <stddef.h>

typedef struct hp_arena hp_arena;

/* New arena whose chunks are at least chunk_size bytes (0 = 64 KiB). */
hp_arena *hp_arena_new(size_t chunk_size);
/* Free every allocation and the arena. Accepts NULL. */
void hp_arena_free(hp_arena *a);
/* Drop all allocations but keep the first chunk for reuse. */
void hp_arena_reset(hp_arena *a);
/* 16-byte aligned memory, zeroed. NULL only on out-of-memory. */
void *hp_arena_alloc(hp_arena *a, size_t n);
/* Copy of s[0..n) plus a NUL. */
char *hp_arena_strndup(hp_arena *a, const char *s, size_t n);
/* Bytes handed out since creation or the last reset. */
size_t hp_arena_used(const hp_arena *a);

#endif
