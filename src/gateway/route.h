/* route.h: choosing where a request goes: weighted picks for canary
 * splits, the fallback order, circuit breakers and retry delays.
 *
 * Owns the run-time state the config cannot hold: one circuit breaker per
 * distinct target of each route (closed -> open after N consecutive
 * failures -> half-open after the cool-down, when exactly one probe may
 * pass; its success closes the circuit, its failure opens it again).
 * Single-threaded (the gateway's loop); time comes from the caller, in
 * milliseconds, so tests can drive it. Knows the config, not HTTP. */
#ifndef HP_GATEWAY_ROUTE_H
#define HP_GATEWAY_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"

/* Most targets one plan holds (one pick plus the fallback list). */
#define HP_ROUTE_MAX_PLAN 16

typedef struct hp_circuit {
    int fails;            /* consecutive failures */
    bool open;
    bool probing;         /* half-open: the one probe is in flight */
    int64_t open_until;   /* ms; when an open circuit turns half-open */
    int64_t opened_total; /* times it opened (metrics, tests) */
} hp_circuit;

/* Run-time state of all routes of one config. */
typedef struct hp_routes hp_routes;

/* seed 0 picks one from the clock. NULL on OOM. c is borrowed and must
 * outlive the result. */
hp_routes *hp_routes_new(const hp_gwconf *c, uint64_t seed);
void hp_routes_free(hp_routes *rs); /* accepts NULL */

/* An ordered list of places to try. */
typedef struct hp_plan {
    const hp_gwconf_target *t[HP_ROUTE_MAX_PLAN];
    hp_circuit *cb[HP_ROUTE_MAX_PLAN];
    bool fallback[HP_ROUTE_MAX_PLAN]; /* entry came from the fallback list */
    int n;
    int64_t retry_after_ms; /* when n == 0: time until a circuit half-opens */
} hp_plan;

/* Plan for a request on route r at now_ms: one weighted pick among the
 * route's targets whose circuit lets a request through, then the fallback
 * list in order (skipping targets already planned and open circuits).
 * A half-open circuit admits its one probe here. */
void hp_routes_plan(hp_routes *rs, const hp_gwconf_route *r, int64_t now_ms,
                    hp_plan *out);

/* The attempt on a planned target succeeded / failed (at now_ms). */
void hp_circuit_success(hp_circuit *cb);
void hp_circuit_failure(hp_circuit *cb, const hp_gwconf_route *r,
                        int64_t now_ms);
/* The same, for a failure whose answer said when to try again (a 429 or
 * 503 with Retry-After): when the circuit opens, it stays open for
 * wait_ms if that is shorter than the route's cool-down. wait_ms <= 0: the
 * cool-down. */
void hp_circuit_failure_wait(hp_circuit *cb, const hp_gwconf_route *r,
                             int64_t now_ms, int64_t wait_ms);
/* A planned target that was never tried (the request ended first):
 * release a half-open probe slot it held. */
void hp_circuit_release(hp_circuit *cb);

/* The circuit of target t of route r (for metrics); NULL if unknown. */
hp_circuit *hp_routes_circuit(hp_routes *rs, const hp_gwconf_route *r,
                              const hp_gwconf_target *t);

/* Delay before retry number k (0-based) on the same target: exponential
 * from 100 ms, doubled each time, capped at 5 s, with full jitter in
 * [d/2, 3d/2). */
int64_t hp_routes_backoff_ms(hp_routes *rs, int k);

/* A uniform random number in [0, 1) from the routes' generator. */
double hp_routes_rand(hp_routes *rs);

/* A stable display name for a target: "upstream/model" or "local/name". */
void hp_target_name(const hp_gwconf *c, const hp_gwconf_target *t, char *buf,
                    size_t n);

#endif
