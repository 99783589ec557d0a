/* test_metrics.c: the Prometheus registry renders valid, cumulative,
 * monotonic metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "measure/metrics.h"

/* Value of the first sample line that starts with `prefix`. */
static double sample(const char *text, const char *prefix)
{
    const char *p = text;
    size_t n = strlen(prefix);
    while (p && *p) {
        if (!strncmp(p, prefix, n))
            return strtod(p + n, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

/* metrics_buckets_cumulative: an observation lands in its bucket and in
 * every larger one; +Inf equals _count. */
static void metrics_buckets_cumulative(void **state)
{
    (void)state;
    hp_metrics *m = hp_metrics_new("m1");
    hp_metrics_observe(m, HP_M_TTFT, 0.003);
    hp_metrics_observe(m, HP_M_TTFT, 0.05);
    hp_metrics_observe(m, HP_M_TTFT, 1000);
    char *t = hp_metrics_render(m, NULL);
    assert_non_null(t);
    assert_true(sample(t, "hotpath_time_to_first_token_seconds_bucket{model=\"m1\",le=\"0.001\"} ") == 0);
    assert_true(sample(t, "hotpath_time_to_first_token_seconds_bucket{model=\"m1\",le=\"0.005\"} ") == 1);
    assert_true(sample(t, "hotpath_time_to_first_token_seconds_bucket{model=\"m1\",le=\"0.06\"} ") == 2);
    assert_true(sample(t, "hotpath_time_to_first_token_seconds_bucket{model=\"m1\",le=\"80\"} ") == 2);
    assert_true(sample(t, "hotpath_time_to_first_token_seconds_bucket{model=\"m1\",le=\"+Inf\"} ") == 3);
    assert_true(sample(t, "hotpath_time_to_first_token_seconds_count{model=\"m1\"} ") == 3);
    assert_non_null(strstr(t, "# TYPE hotpath_inter_token_latency_seconds histogram"));
    assert_non_null(strstr(t, "# TYPE hotpath_e2e_request_latency_seconds histogram"));
    assert_non_null(strstr(t, "# TYPE hotpath_request_queue_time_seconds histogram"));
    free(t);
    hp_metrics_free(m);
}

/* metrics_counters_and_gauges: counters add up, statuses and reasons are
 * labelled, gauges show what the caller passed. */
static void metrics_counters_and_gauges(void **state)
{
    (void)state;
    hp_metrics *m = hp_metrics_new("m\"x");
    hp_metrics_add_tokens(m, 10, 3);
    hp_metrics_add_tokens(m, 5, 2);
    hp_metrics_request_finished(m, "stop");
    hp_metrics_request_finished(m, "length");
    hp_metrics_request_finished(m, "length");
    hp_metrics_request_finished(m, "bogus");
    hp_metrics_http_status(m, 200);
    hp_metrics_http_status(m, 400);
    hp_metrics_http_status(m, 200);
    hp_metrics_prefix_cache(m, 100, 64);
    hp_metrics_gauges g = {2, 1, 7, 100};
    char *t = hp_metrics_render(m, &g);
    assert_true(sample(t, "hotpath_prompt_tokens_total{model=\"m\\\"x\"} ") == 15);
    assert_true(sample(t, "hotpath_generation_tokens_total{model=\"m\\\"x\"} ") == 5);
    assert_true(sample(t, "hotpath_requests_total{model=\"m\\\"x\",finish_reason=\"length\"} ") == 2);
    assert_true(sample(t, "hotpath_http_responses_total{model=\"m\\\"x\",status=\"200\"} ") == 2);
    assert_true(sample(t, "hotpath_prefix_cache_hits_total{model=\"m\\\"x\"} ") == 64);
    assert_true(sample(t, "hotpath_kv_cache_blocks_total{model=\"m\\\"x\"} ") == 100);
    assert_true(sample(t, "hotpath_num_requests_running{model=\"m\\\"x\"} ") == 2);
    free(t);
    hp_metrics_free(m);
}

/* metrics_bad_values: NaN and negative observations do not corrupt sums. */
static void metrics_bad_values(void **state)
{
    (void)state;
    hp_metrics *m = hp_metrics_new("m");
    hp_metrics_observe(m, HP_M_ITL, -1);
    hp_metrics_observe(m, HP_M_ITL, 0.0 / 0.0);
    hp_metrics_observe(m, HP_M_HIST_COUNT, 1);
    hp_metrics_observe(NULL, HP_M_ITL, 1);
    char *t = hp_metrics_render(m, NULL);
    assert_true(sample(t, "hotpath_inter_token_latency_seconds_sum{model=\"m\"} ") == 0);
    assert_true(sample(t, "hotpath_inter_token_latency_seconds_count{model=\"m\"} ") == 2);
    free(t);
    hp_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metrics_buckets_cumulative),
        cmocka_unit_test(metrics_counters_and_gauges),
        cmocka_unit_test(metrics_bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
