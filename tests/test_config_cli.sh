#!/usr/bin/env bash
# test_config_cli.sh: `hotpath config check FILE` prints a summary and
# exits 0 for a valid config, prints "FILE:LINE: key: message" and exits 1
# for a bad one, exits 2 on bad usage, and never echoes a key.
set -u
BIN=${HOTPATH_BIN:?}
fail=0
ok() { echo "ok - $1"; }
bad() { echo "FAIL - $1"; fail=1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/good.yaml" <<'Y'
listen: {host: 127.0.0.1, port: 8080}
models:
  - {name: local-small, path: models/small.gguf}
upstreams:
  - {name: lab, kind: openai, base_url: "https://lab.example/v1", api_key_env: LAB_API_KEY}
  - {name: claude, kind: anthropic, base_url: "https://anthropic.example", api_key_env: ANTHROPIC_API_KEY}
  - {name: gpu-pool, kind: openai, base_url: "http://gpu-pool.internal:8000/v1"}
routes:
  - model: chat
    targets:
      - {upstream: lab, model: lab-model-mini, weight: 90}
      - {local: local-small, weight: 10}
    fallback: [{upstream: claude, model: claude-haiku}, {local: local-small}]
    fallback_on: [429, 500, 502, 503, 504, timeout, connect]
    retries: 2
    timeouts: {connect_ms: 2000, first_token_ms: 10000, total_ms: 120000}
    circuit: {failures: 5, cooldown_ms: 30000}
prices:
  lab-model-mini: {input: 0.15, output: 0.60, cached_input: 0.075}
runtime_cost_per_hour: 0.20
database: hotpath.db
cache: {max_mb: 256, ttl_s: 3600}
Y

# config_check_ok: summary on stdout, nothing on stderr, exit 0.
out=$("$BIN" config check "$tmp/good.yaml" 2>"$tmp/err"); rc=$?
[ $rc -eq 0 ] && [ "$out" == "$tmp/good.yaml: ok (1 models, 3 upstreams, 1 routes)" ] \
  && [ ! -s "$tmp/err" ] \
  && ok config_check_ok || bad "config_check_ok (rc $rc, '$out')"

# config_check_bad_key: the error names file, line and key; exit 1.
sed 's/    retries: 2/    retries: 2\n    retry_count: 3/' "$tmp/good.yaml" >"$tmp/b1.yaml"
err=$("$BIN" config check "$tmp/b1.yaml" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && [ "$err" == "$tmp/b1.yaml:16: routes[0].retry_count: unknown key" ] \
  && ok config_check_bad_key || bad "config_check_bad_key (rc $rc, '$err')"

# config_check_literal_key: refused with a pointer to api_key_env, and the
# key itself is not printed.
sed 's/api_key_env: LAB_API_KEY/api_key: sk-live-SECRET/' "$tmp/good.yaml" >"$tmp/b2.yaml"
all=$("$BIN" config check "$tmp/b2.yaml" 2>&1); rc=$?
[ $rc -eq 1 ] && [[ "$all" == "$tmp/b2.yaml:5: upstreams[0].api_key: "*api_key_env* ]] \
  && [[ "$all" != *SECRET* ]] && ok config_check_literal_key || bad "config_check_literal_key (rc $rc, '$all')"

# config_check_unknown_upstream: a target naming no upstream, exit 1.
sed 's/upstream: claude/upstream: claud/' "$tmp/good.yaml" >"$tmp/b3.yaml"
err=$("$BIN" config check "$tmp/b3.yaml" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && [[ "$err" == "$tmp/b3.yaml:13: routes[0].fallback[0].upstream: no upstream named 'claud'"* ]] \
  && ok config_check_unknown_upstream || bad "config_check_unknown_upstream (rc $rc, '$err')"

# config_check_empty_string: "" is refused at its line, exit 1.
sed 's/- model: chat/- model: ""/' "$tmp/good.yaml" >"$tmp/b4.yaml"
err=$("$BIN" config check "$tmp/b4.yaml" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && [ "$err" == "$tmp/b4.yaml:9: routes[0].model: must be non-empty" ] \
  && ok config_check_empty_string || bad "config_check_empty_string (rc $rc, '$err')"

# config_check_missing_file: exit 1 with the path in the message.
err=$("$BIN" config check "$tmp/none.yaml" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && [[ "$err" == "$tmp/none.yaml: cannot open"* ]] \
  && ok config_check_missing_file || bad "config_check_missing_file (rc $rc, '$err')"

# config_usage: --help exits 0 on stdout; bad usage exits 2.
"$BIN" config --help | grep -q "usage: hotpath config check FILE" && ok config_help || bad config_help
"$BIN" config check --help | grep -q "usage:" && ok config_check_help || bad config_check_help
"$BIN" config >/dev/null 2>&1; rc=$?; [ $rc -eq 2 ] && ok config_no_action || bad "config_no_action (rc $rc)"
"$BIN" config lint "$tmp/good.yaml" >/dev/null 2>&1; rc=$?; [ $rc -eq 2 ] && ok config_bad_action || bad "config_bad_action (rc $rc)"
"$BIN" config check >/dev/null 2>&1; rc=$?; [ $rc -eq 2 ] && ok config_check_no_file || bad "config_check_no_file (rc $rc)"
"$BIN" --help | grep -q "^  config " && ok config_listed || bad config_listed

exit $fail
