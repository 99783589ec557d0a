/* test_route.c: route planning and circuit breakers (src/gateway/route.c)
 * and the gateway's labelled metrics (src/measure/gwmetrics.c).
 *
 * The spec: weighted picks follow the weights; the fallback list follows
 * the pick in order without repeating a target; a circuit opens after N
 * consecutive failures, refuses traffic during the cool-down, then lets
 * exactly one probe through, closing on its success and re-opening on its
 * failure; backoff doubles with jitter inside its bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/config.h"
#include "gateway/route.h"
#include "measure/gwmetrics.h"

static const char *conf_text =
    "upstreams:\n"
    "  - {name: lab, kind: openai, base_url: 'http://127.0.0.1:1/v1'}\n"
    "  - {name: other, kind: openai, base_url: 'http://127.0.0.1:2/v1'}\n"
    "routes:\n"
    "  - model: chat\n"
    "    targets:\n"
    "      - {upstream: lab, model: a, weight: 90}\n"
    "      - {upstream: lab, model: b, weight: 10}\n"
    "    fallback: [{upstream: other, model: c}, {upstream: lab, model: a}]\n"
    "    circuit: {failures: 3, cooldown_ms: 1000}\n"
    "  - model: solo\n"
    "    targets: [{upstream: lab, model: a}]\n";

static hp_gwconf *load(void)
{
    hp_gwconf *c = NULL;
    hp_errbuf eb;
    hp_err e = hp_gwconf_parse("t.yaml", conf_text, strlen(conf_text), &c, &eb);
    if (e)
        fprintf(stderr, "%s\n", eb.msg);
    assert_int_equal(e, HP_OK);
    return c;
}

static void route_weights_follow_config(void **state)
{
    (void)state;
    hp_gwconf *c = load();
    hp_routes *rs = hp_routes_new(c, 42);
    const hp_gwconf_route *r = hp_gwconf_route_find(c, "chat");
    int n_a = 0, n = 10000;
    for (int i = 0; i < n; i++) {
        hp_plan p;
        hp_routes_plan(rs, r, 0, &p);
        /* the pick, then the fallback list without the picked target */
        assert_true(p.n == 2 || p.n == 3);
        assert_false(p.fallback[0]);
        if (!strcmp(p.t[0]->model, "a")) {
            n_a++;
            assert_int_equal(p.n, 2); /* "a" is not planned twice */
        }
        assert_string_equal(p.t[1]->model, "c");
        assert_true(p.fallback[1]);
    }
    /* 90% +- 4 sigma of a binomial(10000, 0.9): sigma = 30 */
    assert_true(abs(n_a - 9000) < 120);
    hp_routes_free(rs);
    hp_gwconf_free(c);
}

static void circuit_opens_probes_and_recovers(void **state)
{
    (void)state;
    hp_gwconf *c = load();
    hp_routes *rs = hp_routes_new(c, 7);
    const hp_gwconf_route *r = hp_gwconf_route_find(c, "chat");
    hp_circuit *cb_a = hp_routes_circuit(rs, r, &r->targets[0]);
    hp_circuit *cb_c = hp_routes_circuit(rs, r, &r->fallback[0]);
    assert_non_null(cb_a);
    /* the fallback entry for "a" shares the weighted target's breaker */
    assert_ptr_equal(cb_a, hp_routes_circuit(rs, r, &r->fallback[1]));
    for (int i = 0; i < 2; i++)
        hp_circuit_failure(cb_a, r, 100);
    assert_false(cb_a->open);
    hp_circuit_success(cb_a); /* consecutive: a success resets */
    for (int i = 0; i < 3; i++)
        hp_circuit_failure(cb_a, r, 100);
    assert_true(cb_a->open);
    /* open: "a" is never planned before the cool-down ends */
    for (int i = 0; i < 200; i++) {
        hp_plan p;
        hp_routes_plan(rs, r, 500, &p);
        for (int k = 0; k < p.n; k++)
            assert_ptr_not_equal(p.cb[k], cb_a);
    }
    /* half-open: exactly one probe passes */
    int probes = 0;
    for (int i = 0; i < 200; i++) {
        hp_plan p;
        hp_routes_plan(rs, r, 1200, &p);
        for (int k = 0; k < p.n; k++)
            probes += p.cb[k] == cb_a;
    }
    assert_int_equal(probes, 1);
    /* the probe fails: open again for a full cool-down */
    hp_circuit_failure(cb_a, r, 1300);
    assert_true(cb_a->open);
    assert_int_equal(cb_a->open_until, 2300);
    /* next probe succeeds: closed, traffic flows */
    hp_plan p;
    int seen = 0;
    for (int i = 0; i < 50 && !seen; i++) {
        hp_routes_plan(rs, r, 2400, &p);
        for (int k = 0; k < p.n; k++)
            if (p.cb[k] == cb_a) {
                seen = 1;
                hp_circuit_success(cb_a);
            } else {
                hp_circuit_release(p.cb[k]);
            }
    }
    assert_true(seen);
    assert_false(cb_a->open);
    int hits = 0;
    for (int i = 0; i < 100; i++) {
        hp_routes_plan(rs, r, 2500, &p);
        hits += p.cb[0] == cb_a;
    }
    assert_true(hits > 50);
    /* every target open: an empty plan that says when to retry */
    for (int i = 0; i < 3; i++) {
        hp_circuit_failure(cb_a, r, 3000);
        hp_circuit_failure(cb_c, r, 3000);
    }
    hp_circuit *cb_b = hp_routes_circuit(rs, r, &r->targets[1]);
    for (int i = 0; i < 3; i++)
        hp_circuit_failure(cb_b, r, 3000);
    hp_routes_plan(rs, r, 3100, &p);
    assert_int_equal(p.n, 0);
    assert_int_equal(p.retry_after_ms, 900);
    hp_routes_free(rs);
    hp_gwconf_free(c);
}

/* A target that answered 429/503 with Retry-After is kept out only that
 * long when it is shorter than the cool-down (1000 ms here), never longer. */
static void circuit_open_honours_retry_after(void **state)
{
    (void)state;
    hp_gwconf *c = load();
    hp_routes *rs = hp_routes_new(c, 3);
    const hp_gwconf_route *r = hp_gwconf_route_find(c, "chat");
    hp_circuit *cb = hp_routes_circuit(rs, r, &r->targets[0]);
    for (int i = 0; i < 3; i++)
        hp_circuit_failure_wait(cb, r, 100, 200);
    assert_true(cb->open);
    assert_int_equal(cb->open_until, 300);
    hp_circuit_success(cb);
    for (int i = 0; i < 3; i++)
        hp_circuit_failure_wait(cb, r, 100, 60000);
    assert_int_equal(cb->open_until, 1100);
    hp_circuit_success(cb);
    for (int i = 0; i < 3; i++)
        hp_circuit_failure_wait(cb, r, 100, 0);
    assert_int_equal(cb->open_until, 1100);
    hp_routes_free(rs);
    hp_gwconf_free(c);
}

static void circuit_off_without_config(void **state)
{
    (void)state;
    hp_gwconf *c = load();
    hp_routes *rs = hp_routes_new(c, 1);
    const hp_gwconf_route *r = hp_gwconf_route_find(c, "solo");
    hp_circuit *cb = hp_routes_circuit(rs, r, &r->targets[0]);
    /* the default (5 failures) applies when circuit: is absent */
    for (int i = 0; i < r->circuit_failures + 2; i++)
        hp_circuit_failure(cb, r, 0);
    if (r->circuit_failures > 0)
        assert_true(cb->open);
    else
        assert_false(cb->open);
    hp_routes_free(rs);
    hp_gwconf_free(c);
}

static void backoff_doubles_with_jitter(void **state)
{
    (void)state;
    hp_gwconf *c = load();
    hp_routes *rs = hp_routes_new(c, 3);
    for (int k = 0; k < 8; k++) {
        int64_t d = 100;
        for (int i = 0; i < k && d < 5000; i++)
            d *= 2;
        if (d > 5000)
            d = 5000;
        int64_t lo = INT64_MAX, hi = 0;
        for (int i = 0; i < 1000; i++) {
            int64_t v = hp_routes_backoff_ms(rs, k);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        assert_true(lo >= d / 2);
        assert_true(hi < d / 2 + d);
        assert_true(hi - lo > d / 2); /* jitter spreads */
    }
    hp_routes_free(rs);
    hp_gwconf_free(c);
}

static void gwmetrics_render_and_quantiles(void **state)
{
    (void)state;
    hp_gwm *m = hp_gwm_new();
    assert_non_null(m);
    for (int i = 1; i <= 100; i++)
        hp_gwm_observe(m, HP_GWM_E2E, "chat", "lab/a", i / 1000.0);
    hp_gwm_observe(m, HP_GWM_E2E, "chatty", "lab/a", 50);
    hp_gwm_add(m, HP_GWM_REQUESTS, "chat", "lab/a", "200", 3);
    hp_gwm_add(m, HP_GWM_REQUESTS, "chat", "lab/a", "200", 2);
    hp_gwm_add(m, HP_GWM_REQUESTS, "chat", "lab/\"q\"", "502", 1);
    hp_gwm_add(m, HP_GWM_CACHE, "chat", NULL, "hit", 1);
    hp_gwm_set(m, HP_GWM_CIRCUIT_OPEN, "chat", "lab/a", 1);
    /* p50 of 1..100 ms lies in the (25, 50] ms bucket, near 50 */
    double q50 = hp_gwm_quantile(m, HP_GWM_E2E, "chat", 0.5);
    assert_true(q50 > 0.025 && q50 <= 0.05);
    double q99 = hp_gwm_quantile(m, HP_GWM_E2E, "chat", 0.99);
    assert_true(q99 > 0.05 && q99 <= 0.1); /* "chatty" is another route */
    assert_true(hp_gwm_quantile(m, HP_GWM_TTFT, "chat", 0.5) < 0);
    char *t = hp_gwm_render(m);
    assert_non_null(t);
    assert_non_null(strstr(t, "hotpath_gateway_requests_total{route=\"chat\","
                              "target=\"lab/a\",status=\"200\"} 5\n"));
    assert_non_null(strstr(t, "target=\"lab/\\\"q\\\"\""));
    assert_non_null(strstr(t, "hotpath_gateway_cache_total{route=\"chat\","
                              "result=\"hit\"} 1\n"));
    assert_non_null(strstr(t, "hotpath_gateway_e2e_request_latency_seconds_"
                              "bucket{route=\"chat\",target=\"lab/a\","
                              "le=\"+Inf\"} 100\n"));
    /* each family's TYPE line once */
    const char *p = t;
    int types = 0;
    while ((p = strstr(p, "# TYPE hotpath_gateway_requests_total")) != NULL) {
        types++;
        p++;
    }
    assert_int_equal(types, 1);
    free(t);
    hp_gwm_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(route_weights_follow_config),
        cmocka_unit_test(circuit_opens_probes_and_recovers),
        cmocka_unit_test(circuit_open_honours_retry_after),
        cmocka_unit_test(circuit_off_without_config),
        cmocka_unit_test(backoff_doubles_with_jitter),
        cmocka_unit_test(gwmetrics_render_and_quantiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
