/* arena.c: chunked bump allocator (see arena.h). Large requests get a chunk
 * of their own so one big allocation does not waste the current chunk. */
#include "util/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct chunk {
    struct chunk *next;
    size_t size; /* usable bytes after the header */
    size_t used;
} chunk;

struct hp_arena {
    chunk *head;   /* owns: list of chunks, newest first */
    size_t chunk_size;
    size_t used;
};

#define HDR ((sizeof(chunk) + 15) & ~(size_t)15)

static chunk *chunk_new(size_t size)
{
    chunk *c = malloc(HDR + size);
    if (!c)
        return NULL;
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

hp_arena *hp_arena_new(size_t chunk_size)
{
    hp_arena *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->chunk_size = chunk_size ? chunk_size : 64 * 1024;
    return a;
}

void hp_arena_free(hp_arena *a)
{
    if (!a)
        return;
    chunk *c = a->head;
    while (c) {
        chunk *n = c->next;
        free(c);
        c = n;
    }
    free(a);
}

void hp_arena_reset(hp_arena *a)
{
    if (!a || !a->head)
        return;
    /* keep the oldest chunk of standard size, free the rest */
    chunk *c = a->head, *keep = NULL;
    while (c) {
        chunk *n = c->next;
        if (!keep && c->size == a->chunk_size && !n)
            keep = c;
        else
            free(c);
        c = n;
    }
    a->head = keep;
    if (keep)
        keep->used = 0;
    a->used = 0;
}

void *hp_arena_alloc(hp_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        if (n > a->chunk_size / 4) {
            /* big: own chunk, linked behind the head so the head keeps
             * serving small allocations */
            chunk *big = chunk_new(n);
            if (!big)
                return NULL;
            big->used = n;
            if (c) {
                big->next = c->next;
                c->next = big;
            } else {
                a->head = big;
            }
            a->used += n;
            memset((char *)big + HDR, 0, n);
            return (char *)big + HDR;
        }
        chunk *nc = chunk_new(a->chunk_size);
        if (!nc)
            return NULL;
        nc->next = a->head;
        a->head = nc;
        c = nc;
    }
    void *p = (char *)c + HDR + c->used;
    c->used += n;
    a->used += n;
    memset(p, 0, n);
    return p;
}

char *hp_arena_strndup(hp_arena *a, const char *s, size_t n)
{
    char *p = hp_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

size_t hp_arena_used(const hp_arena *a) { return a->used; }
