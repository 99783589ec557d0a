/* test_hf_config.c: config.json and tokenizer_config.json parsing.
 *
 * hf-1.x  real-shaped configs (llama-3.2-1B, qwen2.5-0.5B, gemma-2-2b,
 *         gemma-3 multimodal with a sparse text_config) give every field,
 *         defaults included; a directory or the file path both load
 * hf-2.x  minimal configs take the architecture's defaults (kv heads,
 *         head_dim, rope base, sliding window absent vs null)
 * hf-3.x  a missing required key is named with the file; wrong types,
 *         inconsistent sizes, unknown architectures and rope types are
 *         refused; random mutations never crash
 * tok-x   tokenizer_config.json: string and named-list chat templates,
 *         AddedToken objects, 1e30 integers, side chat_template.jinja */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "model/hf_config.h"
#include "model/hf_tokcfg.h"

static char g_dir[64];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/hp_test_hfcfg_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Path of a fixture in tests/data/hf (HOTPATH_SRC, else the source tree
 * relative to the build dir). */
static const char *fixture(const char *name)
{
    static char buf[1024];
    const char *src = getenv("HOTPATH_SRC");
    snprintf(buf, sizeof buf, "%s/tests/data/hf/%s", src && *src ? src : "..",
             name);
    return buf;
}

static json_t *load_fixture(const char *name)
{
    json_error_t je;
    json_t *j = json_load_file(fixture(name), 0, &je);
    if (j == NULL)
        print_error("%s: %s\n", fixture(name), je.text);
    assert_non_null(j);
    return j;
}

static hp_err parse_json(json_t *j, hp_hf_config *c, hp_errbuf *eb)
{
    char *s = json_dumps(j, 0);
    assert_non_null(s);
    hp_err e = hp_hf_config_parse(s, strlen(s), "config.json", c, eb);
    free(s);
    return e;
}

static hp_err parse_text(const char *s, hp_hf_config *c, hp_errbuf *eb)
{
    return hp_hf_config_parse(s, strlen(s), "config.json", c, eb);
}

static void expect_err(hp_err got, hp_err want, const hp_errbuf *eb,
                       const char *needle)
{
    if (got != want || strstr(eb->msg, needle) == NULL)
        print_error("got %d '%s', want %d with '%s'\n", got, eb->msg, want,
                    needle);
    assert_int_equal(got, want);
    assert_non_null(strstr(eb->msg, needle));
}

/* ------------------------------------------------------------- hf-1.x */

/* hf-1.1: llama-3.2-1B: GQA, llama3 rope scaling, eos list, tied. */
static void hf_llama32_config(void **state)
{
    (void)state;
    hp_hf_config c;
    hp_errbuf eb = {{0}};
    assert_int_equal(hp_hf_config_load(fixture("llama32_1b_config.json"), &c,
                                       &eb), HP_OK);
    assert_int_equal(c.arch, HP_HF_LLAMA);
    assert_string_equal(hp_hf_arch_name(c.arch), "llama");
    assert_string_equal(c.model_type, "llama");
    assert_string_equal(c.architecture, "LlamaForCausalLM");
    assert_string_equal(c.hidden_act, "silu");
    assert_string_equal(c.torch_dtype, "bfloat16");
    assert_int_equal(c.hidden_size, 2048);
    assert_int_equal(c.n_layers, 16);
    assert_int_equal(c.n_heads, 32);
    assert_int_equal(c.n_kv_heads, 8);
    assert_int_equal(c.head_dim, 64);
    assert_int_equal(c.intermediate_size, 8192);
    assert_int_equal(c.vocab_size, 128256);
    assert_int_equal(c.max_pos, 131072);
    assert_true(c.rms_norm_eps == 1e-5f);
    assert_true(c.rope_theta == 500000.0f);
    assert_true(c.rope_local_theta == 500000.0f);
    assert_true(c.partial_rotary_factor == 1.0f);
    assert_int_equal(c.rope_scaling.type, HP_HF_ROPE_LLAMA3);
    assert_true(c.rope_scaling.factor == 32.0f);
    assert_true(c.rope_scaling.low_freq_factor == 1.0f);
    assert_true(c.rope_scaling.high_freq_factor == 4.0f);
    assert_int_equal(c.rope_scaling.original_max_pos, 8192);
    assert_true(c.tie_word_embeddings);
    assert_false(c.attention_bias);
    assert_false(c.qk_norm);
    assert_int_equal(c.sliding_window, 0);
    assert_int_equal(c.layer_sliding[0], 0);
    assert_true(c.query_pre_attn_scalar == 0);
    assert_true(c.attn_logit_softcapping == 0);
    assert_true(c.final_logit_softcapping == 0);
    assert_int_equal(c.bos_id, 128000);
    assert_int_equal(c.n_eos, 3);
    assert_int_equal(c.eos_ids[2], 128009);
    assert_true(hp_hf_config_is_eos(&c, 128008));
    assert_false(hp_hf_config_is_eos(&c, 128000));

    /* the directory holding config.json loads the same */
    char p[256];
    snprintf(p, sizeof p, "%s/config.json", g_dir);
    json_t *j = load_fixture("llama32_1b_config.json");
    assert_int_equal(json_dump_file(j, p, 0), 0);
    json_decref(j);
    hp_hf_config d;
    assert_int_equal(hp_hf_config_load(g_dir, &d, &eb), HP_OK);
    assert_memory_equal(&c, &d, sizeof c);
    unlink(p);
    expect_err(hp_hf_config_load(g_dir, &d, &eb), HP_ERR_NOT_FOUND, &eb,
               "config.json: cannot open");
}

/* hf-1.2: qwen2.5-0.5B: q/k/v biases, sliding window off, single eos. */
static void hf_qwen2_config(void **state)
{
    (void)state;
    hp_hf_config c;
    hp_errbuf eb = {{0}};
    assert_int_equal(hp_hf_config_load(fixture("qwen2_config.json"), &c, &eb),
                     HP_OK);
    assert_int_equal(c.arch, HP_HF_QWEN2);
    assert_int_equal(c.hidden_size, 896);
    assert_int_equal(c.n_layers, 24);
    assert_int_equal(c.n_heads, 14);
    assert_int_equal(c.n_kv_heads, 2);
    assert_int_equal(c.head_dim, 64);
    assert_int_equal(c.intermediate_size, 4864);
    assert_int_equal(c.vocab_size, 151936);
    assert_true(c.rms_norm_eps == 1e-6f);
    assert_true(c.rope_theta == 1000000.0f);
    assert_int_equal(c.rope_scaling.type, HP_HF_ROPE_NONE);
    assert_true(c.attention_bias);
    assert_true(c.tie_word_embeddings);
    assert_int_equal(c.sliding_window, 0); /* use_sliding_window false */
    for (int i = 0; i < c.n_layers; i++)
        assert_int_equal(c.layer_sliding[i], 0);
    assert_int_equal(c.bos_id, 151643);
    assert_int_equal(c.n_eos, 1);
    assert_int_equal(c.eos_ids[0], 151645);

    /* with the window on, layers from max_window_layers slide */
    json_t *j = load_fixture("qwen2_config.json");
    json_object_set_new(j, "use_sliding_window", json_true());
    json_object_set_new(j, "sliding_window", json_integer(4096));
    assert_int_equal(parse_json(j, &c, &eb), HP_OK);
    assert_int_equal(c.sliding_window, 4096);
    assert_int_equal(c.layer_sliding[20], 0);
    assert_int_equal(c.layer_sliding[21], 1);
    /* attention_bias cannot switch qwen2's biases off */
    json_object_set_new(j, "attention_bias", json_false());
    assert_int_equal(parse_json(j, &c, &eb), HP_OK);
    assert_true(c.attention_bias);
    json_decref(j);
}

/* hf-1.3: gemma-2-2b: softcaps, query scale, alternating windows. */
static void hf_gemma2_config(void **state)
{
    (void)state;
    hp_hf_config c;
    hp_errbuf eb = {{0}};
    assert_int_equal(hp_hf_config_load(fixture("gemma2_config.json"), &c,
                                       &eb), HP_OK);
    assert_int_equal(c.arch, HP_HF_GEMMA2);
    assert_string_equal(c.hidden_act, "gelu_pytorch_tanh");
    assert_string_equal(c.torch_dtype, "float32");
    assert_int_equal(c.hidden_size, 2304);
    assert_int_equal(c.n_heads, 8);
    assert_int_equal(c.n_kv_heads, 4);
    assert_int_equal(c.head_dim, 256);
    assert_int_equal(c.vocab_size, 256000);
    assert_true(c.query_pre_attn_scalar == 256.0f);
    assert_true(c.attn_logit_softcapping == 50.0f);
    assert_true(c.final_logit_softcapping == 30.0f);
    assert_int_equal(c.sliding_window, 4096);
    assert_int_equal(c.layer_sliding[0], 1);
    assert_int_equal(c.layer_sliding[1], 0);
    assert_int_equal(c.layer_sliding[24], 1);
    assert_int_equal(c.layer_sliding[25], 0);
    assert_true(c.tie_word_embeddings); /* gemma's class default */
    assert_int_equal(c.bos_id, 2);
    assert_int_equal(c.n_eos, 2);
    assert_int_equal(c.eos_ids[1], 107);

    /* null softcaps mean none */
    json_t *j = load_fixture("gemma2_config.json");
    json_object_set_new(j, "final_logit_softcapping", json_null());
    assert_int_equal(parse_json(j, &c, &eb), HP_OK);
    assert_true(c.final_logit_softcapping == 0);
    assert_true(c.attn_logit_softcapping == 50.0f);
    json_decref(j);
}

/* hf-1.4: gemma-3 multimodal: text_config is sparse, class defaults
 * fill the rest; the vision tower is ignored. */
static void hf_gemma3_multimodal_config(void **state)
{
    (void)state;
    hp_hf_config c;
    hp_errbuf eb = {{0}};
    assert_int_equal(hp_hf_config_load(fixture("gemma3_mm_config.json"), &c,
                                       &eb), HP_OK);
    assert_int_equal(c.arch, HP_HF_GEMMA3);
    assert_string_equal(c.architecture, "Gemma3ForConditionalGeneration");
    assert_int_equal(c.hidden_size, 2560);
    assert_int_equal(c.intermediate_size, 10240);
    assert_int_equal(c.n_layers, 34);
    assert_int_equal(c.n_heads, 8);
    assert_int_equal(c.n_kv_heads, 4);
    assert_int_equal(c.head_dim, 256);
    assert_int_equal(c.vocab_size, 262208);
    assert_int_equal(c.max_pos, 131072);
    assert_true(c.rope_theta == 1000000.0f);
    assert_true(c.rope_local_theta == 10000.0f);
    assert_int_equal(c.rope_scaling.type, HP_HF_ROPE_LINEAR);
    assert_true(c.rope_scaling.factor == 8.0f);
    assert_true(c.qk_norm);
    assert_true(c.query_pre_attn_scalar == 256.0f);
    assert_true(c.final_logit_softcapping == 0);
    assert_int_equal(c.sliding_window, 1024);
    for (int i = 0; i < c.n_layers; i++)
        assert_int_equal(c.layer_sliding[i], (i + 1) % 6 != 0);
    assert_int_equal(c.n_eos, 2);
    assert_int_equal(c.eos_ids[1], 106);
    assert_string_equal(c.torch_dtype, "bfloat16");

    /* layer_types, when written, decide */
    const char *txt = "{\"model_type\":\"gemma3_text\",\"num_hidden_layers\":"
                      "3,\"layer_types\":[\"full_attention\",\"sliding_"
                      "attention\",\"full_attention\"]}";
    assert_int_equal(parse_text(txt, &c, &eb), HP_OK);
    assert_int_equal(c.layer_sliding[0], 0);
    assert_int_equal(c.layer_sliding[1], 1);
    txt = "{\"model_type\":\"gemma3_text\",\"num_hidden_layers\":3,"
          "\"layer_types\":[\"full_attention\"]}";
    expect_err(parse_text(txt, &c, &eb), HP_ERR_FORMAT, &eb, "layer_types");
}

/* ------------------------------------------------------------- hf-2.x */

#define MIN_SIZES "\"hidden_size\":64,\"num_hidden_layers\":2," \
                  "\"num_attention_heads\":4,\"intermediate_size\":96," \
                  "\"vocab_size\":300"

/* hf-2.1: a minimal config takes the class defaults. */
static void hf_minimal_defaults(void **state)
{
    (void)state;
    hp_hf_config c;
    hp_errbuf eb = {{0}};
    assert_int_equal(parse_text("{\"model_type\":\"llama\"," MIN_SIZES "}",
                                &c, &eb), HP_OK);
    assert_int_equal(c.n_kv_heads, 4);
    assert_int_equal(c.head_dim, 16);
    assert_true(c.rope_theta == 10000.0f);
    assert_true(c.rms_norm_eps == 1e-6f);
    assert_int_equal(c.max_pos, 2048);
    assert_false(c.tie_word_embeddings);
    assert_int_equal(c.bos_id, -1);
    assert_int_equal(c.n_eos, 0);
    assert_string_equal(c.torch_dtype, "");

    /* only architectures[] given */
    assert_int_equal(parse_text("{\"architectures\":[\"Qwen3ForCausalLM\"],"
                                MIN_SIZES "}", &c, &eb), HP_OK);
    assert_int_equal(c.arch, HP_HF_QWEN3);
    assert_string_equal(c.model_type, "qwen3");
    assert_int_equal(c.head_dim, 128); /* Qwen3Config default */
    assert_true(c.qk_norm);

    /* mistral: window absent = 4096 on every layer, null = none */
    assert_int_equal(parse_text("{\"model_type\":\"mistral\"," MIN_SIZES "}",
                                &c, &eb), HP_OK);
    assert_int_equal(c.sliding_window, 4096);
    assert_int_equal(c.layer_sliding[1], 1);
    assert_int_equal(parse_text("{\"model_type\":\"mistral\",\"sliding_"
                                "window\":null," MIN_SIZES "}", &c, &eb),
                     HP_OK);
    assert_int_equal(c.sliding_window, 0);
    assert_int_equal(c.layer_sliding[1], 0);

    /* phi3: eps default, partial rotary, linear rope via "type" */
    assert_int_equal(parse_text("{\"model_type\":\"phi3\",\"partial_rotary_"
                                "factor\":0.75,\"rope_scaling\":{\"type\":"
                                "\"linear\",\"factor\":2}," MIN_SIZES "}", &c,
                                &eb), HP_OK);
    assert_true(c.rms_norm_eps == 1e-5f);
    assert_true(c.partial_rotary_factor == 0.75f);
    assert_int_equal(c.rope_scaling.type, HP_HF_ROPE_LINEAR);
    assert_true(c.rope_scaling.factor == 2.0f);

    /* transformers 5's rope_parameters, and "default" = no scaling */
    assert_int_equal(parse_text("{\"model_type\":\"llama\",\"rope_parameters"
                                "\":{\"rope_type\":\"default\",\"rope_theta"
                                "\":250000}," MIN_SIZES "}", &c, &eb), HP_OK);
    assert_true(c.rope_theta == 250000.0f);
    assert_int_equal(c.rope_scaling.type, HP_HF_ROPE_NONE);
    /* newer "dtype" key */
    assert_int_equal(parse_text("{\"model_type\":\"llama\",\"dtype\":"
                                "\"float16\"," MIN_SIZES "}", &c, &eb),
                     HP_OK);
    assert_string_equal(c.torch_dtype, "float16");
}

/* ------------------------------------------------------------- hf-3.x */

/* hf-3.1: each required key, removed, is named with the file. */
static void hf_missing_keys_named(void **state)
{
    (void)state;
    static const char *const req[] = {"hidden_size", "num_hidden_layers",
                                      "num_attention_heads",
                                      "intermediate_size", "vocab_size"};
    hp_hf_config c;
    hp_errbuf eb;
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++) {
        json_t *j = load_fixture("llama32_1b_config.json");
        json_object_del(j, req[i]);
        char want[64];
        snprintf(want, sizeof want, "config.json: missing %s", req[i]);
        expect_err(parse_json(j, &c, &eb), HP_ERR_FORMAT, &eb, want);
        json_decref(j);
    }
    json_t *j = load_fixture("llama32_1b_config.json");
    json_object_del(j, "model_type");
    assert_int_equal(parse_json(j, &c, &eb), HP_OK); /* architectures[0] */
    json_object_del(j, "architectures");
    expect_err(parse_json(j, &c, &eb), HP_ERR_FORMAT, &eb,
               "config.json: missing model_type");
    json_decref(j);
    j = load_fixture("llama32_1b_config.json");
    json_object_del(json_object_get(j, "rope_scaling"), "low_freq_factor");
    expect_err(parse_json(j, &c, &eb), HP_ERR_FORMAT, &eb,
               "missing low_freq_factor");
    json_decref(j);
    /* the name given to hp_hf_config_load's file is the one reported */
    char p[256];
    snprintf(p, sizeof p, "%s/odd.json", g_dir);
    FILE *f = fopen(p, "w");
    fputs("{\"model_type\":\"llama\"}", f);
    fclose(f);
    expect_err(hp_hf_config_load(p, &c, &eb), HP_ERR_FORMAT, &eb,
               "odd.json: missing hidden_size");
}

/* hf-3.2: wrong types and values are refused with the key named. */
static void hf_bad_values_refused(void **state)
{
    (void)state;
    static const struct {
        const char *key, *value; /* JSON text */
        hp_err code;
        const char *needle;
    } cases[] = {
        {"hidden_size", "\"2048\"", HP_ERR_FORMAT, "hidden_size: expected an "
         "integer"},
        {"hidden_size", "2048.5", HP_ERR_FORMAT, "hidden_size: expected"},
        {"hidden_size", "-1", HP_ERR_FORMAT, "hidden_size: -1 out of range"},
        {"num_hidden_layers", "100000", HP_ERR_FORMAT, "num_hidden_layers"},
        {"num_key_value_heads", "5", HP_ERR_FORMAT, "not a multiple of "
         "num_key_value_heads 5"},
        {"num_key_value_heads", "0", HP_ERR_FORMAT, "num_key_value_heads"},
        {"head_dim", "63", HP_ERR_FORMAT, "head_dim 63 is odd"},
        {"rope_theta", "\"x\"", HP_ERR_FORMAT, "rope_theta: expected a "
         "number"},
        {"rope_theta", "0", HP_ERR_FORMAT, "rope_theta: 0 out of range"},
        {"rms_norm_eps", "-1e-5", HP_ERR_FORMAT, "rms_norm_eps"},
        {"tie_word_embeddings", "1", HP_ERR_FORMAT, "tie_word_embeddings: "
         "expected true or false"},
        {"eos_token_id", "\"x\"", HP_ERR_FORMAT, "eos_token_id"},
        {"eos_token_id", "[1, \"x\"]", HP_ERR_FORMAT, "eos_token_id"},
        {"bos_token_id", "-3", HP_ERR_FORMAT, "bos_token_id"},
        {"torch_dtype", "7", HP_ERR_FORMAT, "torch_dtype: expected a string"},
        {"hidden_act", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
         HP_ERR_FORMAT, "hidden_act: longer than"},
        {"rope_scaling", "3", HP_ERR_FORMAT, "rope_scaling: expected"},
        {"rope_scaling", "{\"factor\":2}", HP_ERR_FORMAT, "rope_type"},
        {"rope_scaling", "{\"rope_type\":\"yarn\",\"factor\":4}",
         HP_ERR_UNSUPPORTED, "rope_scaling type \"yarn\" not supported"},
        {"rope_scaling", "{\"rope_type\":\"llama3\",\"factor\":8,"
         "\"low_freq_factor\":4,\"high_freq_factor\":1,"
         "\"original_max_position_embeddings\":8192}", HP_ERR_FORMAT,
         "high_freq_factor"},
        {"model_type", "\"bert\"", HP_ERR_UNSUPPORTED, "model_type \"bert\" "
         "not supported"},
        {"model_type", "3", HP_ERR_FORMAT, "model_type: expected a string"},
        {"architectures", "\"Llama\"", HP_ERR_FORMAT, "architectures"},
        {"partial_rotary_factor", "1.5", HP_ERR_FORMAT, "partial_rotary"},
        {"sliding_window", "-4", HP_ERR_FORMAT, "sliding_window"},
    };
    hp_hf_config c;
    hp_errbuf eb;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = load_fixture("llama32_1b_config.json");
        json_error_t je;
        json_t *v = json_loads(cases[i].value, JSON_DECODE_ANY, &je);
        assert_non_null(v);
        json_object_set_new(j, cases[i].key, v);
        memset(&c, 0x5a, sizeof c);
        expect_err(parse_json(j, &c, &eb), cases[i].code, &eb,
                   cases[i].needle);
        assert_int_equal(c.hidden_size, 0); /* cleared on failure */
        json_decref(j);
    }
    expect_err(parse_text("{\"model_type\":", &c, &eb), HP_ERR_FORMAT, &eb,
               "config.json: not valid JSON");
    expect_err(parse_text("[1]", &c, &eb), HP_ERR_FORMAT, &eb,
               "not a JSON object");
    expect_err(parse_text("{\"model_type\":\"llama\",\"model_type\":\"x\"}",
                          &c, &eb), HP_ERR_FORMAT, &eb, "duplicate");
    expect_err(parse_text("{\"model_type\":\"llama\",\"hidden_size\":10,"
                          "\"num_hidden_layers\":1,\"num_attention_heads\":"
                          "3,\"intermediate_size\":4,\"vocab_size\":5}", &c,
                          &eb), HP_ERR_FORMAT, &eb, "no head_dim");
}

static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* hf-3.3: random byte mutations of real configs never crash; results are
 * either a full success or a cleared struct with a message. */
static void hf_fuzz_configs(void **state)
{
    (void)state;
    static const char *const files[] = {"llama32_1b_config.json",
                                        "gemma3_mm_config.json",
                                        "tokenizer_config_legacy.json"};
    uint64_t rng = 77;
    for (size_t fi = 0; fi < 3; fi++) {
        /* raw text: the legacy file's 1e30 integer defeats json_load */
        FILE *f = fopen(fixture(files[fi]), "rb");
        assert_non_null(f);
        char *base = calloc(1, 65536);
        size_t n = fread(base, 1, 65535, f);
        fclose(f);
        assert_true(n > 0);
        char *buf = malloc(n + 1);
        for (int it = 0; it < 600; it++) {
            memcpy(buf, base, n + 1);
            int flips = 1 + (int)(next_u64(&rng) % 3);
            for (int k = 0; k < flips; k++) {
                uint64_t r = next_u64(&rng);
                buf[r % n] = "{}[]\":,0-9.etrunlfx \x01\xff"[(r >> 32) % 23];
            }
            size_t len = it % 5 == 0 ? next_u64(&rng) % n : n;
            hp_hf_config c;
            hp_errbuf eb = {{0}};
            hp_err e = hp_hf_config_parse(buf, len, "config.json", &c, &eb);
            if (e != HP_OK) {
                assert_non_null(strstr(eb.msg, "config.json"));
                assert_int_equal(c.n_layers, 0);
            } else {
                assert_true(c.n_layers > 0 && c.n_layers <= HP_HF_MAX_LAYERS);
                assert_int_equal(c.n_heads % c.n_kv_heads, 0);
            }
            hp_hf_tokcfg *t = NULL;
            e = hp_hf_tokcfg_parse(buf, len, "tokenizer_config.json", &t,
                                   &eb);
            assert_true((e == HP_OK) == (t != NULL));
            hp_hf_tokcfg_free(t);
        }
        free(buf);
        free(base);
    }
}

/* -------------------------------------------------------------- tok-x */

/* tok-1: a plain template string and plain token strings. */
static void tok_llama3_config(void **state)
{
    (void)state;
    hp_hf_tokcfg *t = NULL;
    hp_errbuf eb;
    assert_int_equal(hp_hf_tokcfg_load(fixture("tokenizer_config_llama3."
                                               "json"), &t, &eb), HP_OK);
    assert_non_null(t->chat_template);
    assert_non_null(strstr(t->chat_template, "<|start_header_id|>"));
    assert_string_equal(t->bos_token, "<|begin_of_text|>");
    assert_string_equal(t->eos_token, "<|eot_id|>");
    assert_null(t->unk_token);
    assert_null(t->pad_token);
    assert_int_equal(t->add_bos_token, -1);
    hp_hf_tokcfg_free(t);
    hp_hf_tokcfg_free(NULL);
}

/* tok-2: named template list, AddedToken objects, 1e30 integer, flags. */
static void tok_legacy_config(void **state)
{
    (void)state;
    hp_hf_tokcfg *t = NULL;
    hp_errbuf eb;
    assert_int_equal(hp_hf_tokcfg_load(fixture("tokenizer_config_legacy."
                                               "json"), &t, &eb), HP_OK);
    assert_string_equal(t->chat_template, "{% for m in messages %}[{{ m.role"
                        " }}] {{ m.content }}{% endfor %}");
    assert_string_equal(t->bos_token, "<s>");
    assert_string_equal(t->eos_token, "</s>");
    assert_string_equal(t->unk_token, "<unk>");
    assert_null(t->pad_token);
    assert_int_equal(t->add_bos_token, 1);
    assert_int_equal(t->add_eos_token, 0);
    hp_hf_tokcfg_free(t);

    static const struct { const char *json, *needle; } bad[] = {
        {"{\"chat_template\":3}", "chat_template: expected"},
        {"{\"chat_template\":[{\"name\":\"default\"}]}", "chat_template[0]"},
        {"{\"bos_token\":5}", "bos_token: expected"},
        {"{\"eos_token\":{\"content\":5}}", "eos_token: expected"},
        {"{\"add_bos_token\":\"yes\"}", "add_bos_token"},
        {"[]", "not a JSON object"},
        {"{", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t = (hp_hf_tokcfg *)1;
        hp_err e = hp_hf_tokcfg_parse(bad[i].json, strlen(bad[i].json),
                                      "tc.json", &t, &eb);
        expect_err(e, HP_ERR_FORMAT, &eb, bad[i].needle);
        assert_non_null(strstr(eb.msg, "tc.json: "));
        assert_null(t);
    }
    /* only non-default named templates: no template */
    const char *s = "{\"chat_template\":[{\"name\":\"rag\",\"template\":\"x\""
                    "}]}";
    assert_int_equal(hp_hf_tokcfg_parse(s, strlen(s), NULL, &t, &eb), HP_OK);
    assert_null(t->chat_template);
    hp_hf_tokcfg_free(t);
}

/* tok-3: a directory's chat_template.jinja or chat_template.json is used
 * when tokenizer_config.json has none; a missing file is NOT_FOUND. */
static void tok_side_template_files(void **state)
{
    (void)state;
    char dir[128], p[256];
    snprintf(dir, sizeof dir, "%s/tok", g_dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    hp_hf_tokcfg *t = NULL;
    hp_errbuf eb;
    expect_err(hp_hf_tokcfg_load(dir, &t, &eb), HP_ERR_NOT_FOUND, &eb,
               "tokenizer_config.json");
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    FILE *f = fopen(p, "w");
    fputs("{\"eos_token\":\"<end>\"}", f);
    fclose(f);
    assert_int_equal(hp_hf_tokcfg_load(dir, &t, &eb), HP_OK);
    assert_null(t->chat_template);
    hp_hf_tokcfg_free(t);
    snprintf(p, sizeof p, "%s/chat_template.json", dir);
    f = fopen(p, "w");
    fputs("{\"chat_template\":\"J{{ x }}\"}", f);
    fclose(f);
    assert_int_equal(hp_hf_tokcfg_load(dir, &t, &eb), HP_OK);
    assert_string_equal(t->chat_template, "J{{ x }}");
    hp_hf_tokcfg_free(t);
    snprintf(p, sizeof p, "%s/chat_template.jinja", dir);
    f = fopen(p, "w");
    fputs("{{ raw }}\n", f);
    fclose(f);
    assert_int_equal(hp_hf_tokcfg_load(dir, &t, &eb), HP_OK);
    assert_string_equal(t->chat_template, "{{ raw }}\n");
    assert_string_equal(t->eos_token, "<end>");
    hp_hf_tokcfg_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hf_llama32_config),
        cmocka_unit_test(hf_qwen2_config),
        cmocka_unit_test(hf_gemma2_config),
        cmocka_unit_test(hf_gemma3_multimodal_config),
        cmocka_unit_test(hf_minimal_defaults),
        cmocka_unit_test(hf_missing_keys_named),
        cmocka_unit_test(hf_bad_values_refused),
        cmocka_unit_test(hf_fuzz_configs),
        cmocka_unit_test(tok_llama3_config),
        cmocka_unit_test(tok_legacy_config),
        cmocka_unit_test(tok_side_template_files),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
