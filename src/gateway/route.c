/* route.c: weighted picks, fallback order and circuit breakers (route.h).
 *
 * Circuits are keyed by target identity within a route (upstream or local
 * index plus model name), so a target listed both as a weighted target
 * and as a fallback shares one breaker: it fails the same way either way. */
#include "gateway/route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct circ_slot {
    const hp_gwconf_route *route;
    const hp_gwconf_target *key; /* first target with this identity */
    hp_circuit cb;
} circ_slot;

struct hp_routes {
    const hp_gwconf *c;  /* borrows */
    circ_slot *slots;    /* owns */
    size_t n_slots;
    uint64_t rng;        /* xorshift64* state */
};

static bool same_target(const hp_gwconf_target *a, const hp_gwconf_target *b)
{
    if (a->upstream != b->upstream || a->local != b->local)
        return false;
    if (!a->model || !b->model)
        return a->model == b->model;
    return !strcmp(a->model, b->model);
}

static hp_circuit *slot_for(hp_routes *rs, const hp_gwconf_route *r,
                            const hp_gwconf_target *t)
{
    for (size_t i = 0; i < rs->n_slots; i++)
        if (rs->slots[i].route == r && same_target(rs->slots[i].key, t))
            return &rs->slots[i].cb;
    return NULL;
}

static void add_slot(hp_routes *rs, const hp_gwconf_route *r,
                     const hp_gwconf_target *t)
{
    if (slot_for(rs, r, t))
        return;
    circ_slot *s = &rs->slots[rs->n_slots++];
    memset(s, 0, sizeof *s);
    s->route = r;
    s->key = t;
}

hp_routes *hp_routes_new(const hp_gwconf *c, uint64_t seed)
{
    hp_routes *rs = calloc(1, sizeof *rs);
    if (!rs)
        return NULL;
    rs->c = c;
    size_t n = 0;
    for (size_t i = 0; i < c->n_routes; i++)
        n += c->routes[i].n_targets + c->routes[i].n_fallback;
    rs->slots = calloc(n ? n : 1, sizeof *rs->slots);
    if (!rs->slots) {
        free(rs);
        return NULL;
    }
    for (size_t i = 0; i < c->n_routes; i++) {
        const hp_gwconf_route *r = &c->routes[i];
        for (size_t k = 0; k < r->n_targets; k++)
            add_slot(rs, r, &r->targets[k]);
        for (size_t k = 0; k < r->n_fallback; k++)
            add_slot(rs, r, &r->fallback[k]);
    }
    if (!seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^
               (uint64_t)ts.tv_sec;
    }
    rs->rng = seed ? seed : 0x2545F4914F6CDD1Dull;
    return rs;
}

void hp_routes_free(hp_routes *rs)
{
    if (!rs)
        return;
    free(rs->slots);
    free(rs);
}

double hp_routes_rand(hp_routes *rs)
{
    uint64_t x = rs->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rs->rng = x;
    return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) * 0x1.0p-53;
}

/* May a request pass this circuit now? A half-open circuit lets exactly
 * one through and marks it as the probe. */
static bool circuit_admit(hp_circuit *cb, const hp_gwconf_route *r,
                          int64_t now_ms, int64_t *wait_ms)
{
    if (!cb || r->circuit_failures <= 0 || !cb->open)
        return true;
    if (now_ms < cb->open_until) {
        int64_t w = cb->open_until - now_ms;
        if (*wait_ms < 0 || w < *wait_ms)
            *wait_ms = w;
        return false;
    }
    if (cb->probing) {
        if (*wait_ms < 0 || 100 < *wait_ms)
            *wait_ms = 100; /* the probe should answer soon */
        return false;
    }
    cb->probing = true;
    return true;
}

static bool planned(const hp_plan *p, const hp_circuit *cb)
{
    for (int i = 0; i < p->n; i++)
        if (p->cb[i] == cb)
            return true;
    return false;
}

void hp_routes_plan(hp_routes *rs, const hp_gwconf_route *r, int64_t now_ms,
                    hp_plan *out)
{
    memset(out, 0, sizeof *out);
    int64_t wait = -1;
    /* Weighted pick among targets whose circuit is closed (or half-open
     * with its probe slot free): draw, and if the drawn target's circuit
     * refuses, drop it and draw again among the rest. */
    bool tried[HP_ROUTE_MAX_PLAN] = {false};
    size_t nt = r->n_targets < HP_ROUTE_MAX_PLAN ? r->n_targets
                                                 : HP_ROUTE_MAX_PLAN;
    for (size_t round = 0; round < nt; round++) {
        double total = 0;
        for (size_t k = 0; k < nt; k++)
            if (!tried[k])
                total += r->targets[k].weight;
        if (total <= 0)
            break;
        double x = hp_routes_rand(rs) * total;
        size_t pick = nt;
        for (size_t k = 0; k < nt; k++) {
            if (tried[k] || !r->targets[k].weight)
                continue;
            pick = k;
            if (x < r->targets[k].weight)
                break;
            x -= r->targets[k].weight;
        }
        if (pick == nt)
            break;
        tried[pick] = true;
        hp_circuit *cb = slot_for(rs, r, &r->targets[pick]);
        if (circuit_admit(cb, r, now_ms, &wait)) {
            out->t[out->n] = &r->targets[pick];
            out->cb[out->n] = cb;
            out->fallback[out->n] = false;
            out->n++;
            break;
        }
    }
    for (size_t k = 0; k < r->n_fallback && out->n < HP_ROUTE_MAX_PLAN; k++) {
        hp_circuit *cb = slot_for(rs, r, &r->fallback[k]);
        if (planned(out, cb) || !circuit_admit(cb, r, now_ms, &wait))
            continue;
        out->t[out->n] = &r->fallback[k];
        out->cb[out->n] = cb;
        out->fallback[out->n] = true;
        out->n++;
    }
    out->retry_after_ms = out->n ? 0 : (wait > 0 ? wait : 1000);
}

void hp_circuit_success(hp_circuit *cb)
{
    if (!cb)
        return;
    cb->fails = 0;
    cb->open = false;
    cb->probing = false;
}

void hp_circuit_failure(hp_circuit *cb, const hp_gwconf_route *r,
                        int64_t now_ms)
{
    hp_circuit_failure_wait(cb, r, now_ms, 0);
}

void hp_circuit_failure_wait(hp_circuit *cb, const hp_gwconf_route *r,
                             int64_t now_ms, int64_t wait_ms)
{
    if (!cb || r->circuit_failures <= 0)
        return;
    cb->fails++;
    if (cb->probing || cb->fails >= r->circuit_failures) {
        if (!cb->open || cb->probing)
            cb->opened_total++;
        cb->open = true;
        /* a target that said when to come back (Retry-After) is not kept
         * out longer than that: a busy server is not a broken one */
        int64_t cool = r->circuit_cooldown_ms;
        if (wait_ms > 0 && wait_ms < cool)
            cool = wait_ms;
        cb->open_until = now_ms + cool;
    }
    cb->probing = false;
}

void hp_circuit_release(hp_circuit *cb)
{
    if (cb)
        cb->probing = false;
}

hp_circuit *hp_routes_circuit(hp_routes *rs, const hp_gwconf_route *r,
                              const hp_gwconf_target *t)
{
    return rs ? slot_for(rs, r, t) : NULL;
}

int64_t hp_routes_backoff_ms(hp_routes *rs, int k)
{
    int64_t d = 100;
    for (int i = 0; i < k && d < 5000; i++)
        d *= 2;
    if (d > 5000)
        d = 5000;
    return d / 2 + (int64_t)(hp_routes_rand(rs) * (double)d);
}

void hp_target_name(const hp_gwconf *c, const hp_gwconf_target *t, char *buf,
                    size_t n)
{
    if (t->local >= 0 && (size_t)t->local < c->n_models)
        snprintf(buf, n, "local/%s", c->models[t->local].name);
    else if (t->upstream >= 0 && (size_t)t->upstream < c->n_upstreams)
        snprintf(buf, n, "%s/%s", c->upstreams[t->upstream].name,
                 t->model ? t->model : "");
    else
        snprintf(buf, n, "?");
}
