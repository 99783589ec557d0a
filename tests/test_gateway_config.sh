#!/usr/bin/env bash
# test_gateway_config.sh: `hotpath serve --config FILE` refuses a broken
# config before it listens. A config error (YAML syntax, unknown key, a
# route naming an unknown upstream, a literal api_key, an unreadable or
# missing file) exits 2; a start-up failure (an api_key_env variable not
# set, a model file that does not exist, a database that cannot be
# created) exits 1. Either way stderr holds exactly one line, naming the
# file (and FILE:LINE plus the key where the error has a place), no value
# of a secret is echoed, and the process never dies of a signal. --config
# together with model options is bad usage (exit 2).
set -u
BIN=${HOTPATH_BIN:?}
fail=0
ok() { echo "ok - $1"; }
bad() { echo "FAIL - $1"; fail=1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

# run_bad NAME WANT_RC FILE GREP... : serve --config FILE (bounded by
# timeout, so a config that wrongly starts cannot hang the test) must exit
# WANT_RC with one stderr line matching every fixed string GREP.
run_bad() {
  local name=$1 want=$2 file=$3; shift 3
  timeout 20 "$BIN" serve --config "$file" >"$tmp/out" 2>"$tmp/err" </dev/null
  local rc=$?
  local lines; lines=$(wc -l <"$tmp/err")
  if [ $rc -ge 124 ]; then
    bad "$name: exit $rc (signal or timeout); stderr: $(head -c 300 "$tmp/err")"
    return
  fi
  if [ $rc -ne "$want" ]; then
    bad "$name: exit $rc, want $want; stderr: $(head -c 300 "$tmp/err")"
    return
  fi
  if [ "$lines" -ne 1 ]; then
    bad "$name: $lines stderr lines, want 1: $(head -c 300 "$tmp/err")"
    return
  fi
  if [ -s "$tmp/out" ]; then
    bad "$name: unexpected stdout: $(head -c 200 "$tmp/out")"
    return
  fi
  local g
  for g in "$@"; do
    if ! grep -qF -- "$g" "$tmp/err"; then
      bad "$name: stderr lacks '$g': $(cat "$tmp/err")"
      return
    fi
  done
  ok "$name"
}

# gwconfig_yaml_syntax: an unclosed flow mapping, reported at its line.
printf 'listen: {host: 127.0.0.1, port: 0\nroutes: [\n' >syntax.yaml
run_bad gwconfig_yaml_syntax 2 syntax.yaml "syntax.yaml:2:" "yaml"

# gwconfig_unknown_key: a typo is never silently ignored.
cat >unknown.yaml <<'Y'
listen: {host: 127.0.0.1, port: 0}
upstreams:
  - {name: lab, kind: openai, base_url: "http://127.0.0.1:9/v1"}
routes:
  - model: chat
    targets: [{upstream: lab, model: m}]
    retry_count: 2
Y
run_bad gwconfig_unknown_key 2 unknown.yaml "unknown.yaml:7:" \
  "routes[0].retry_count" "unknown key"

# gwconfig_unknown_upstream: a target must name a listed upstream.
cat >noup.yaml <<'Y'
upstreams:
  - {name: lab, kind: openai, base_url: "http://127.0.0.1:9/v1"}
routes:
  - model: chat
    targets: [{upstream: nolab, model: m}]
Y
run_bad gwconfig_unknown_upstream 2 noup.yaml "noup.yaml:5:" \
  "routes[0].targets[0].upstream" "nolab"

# gwconfig_literal_api_key: refused, and the value is never echoed.
cat >literal.yaml <<'Y'
upstreams:
  - name: lab
    kind: openai
    base_url: "http://127.0.0.1:9/v1"
    api_key: sk-gwk-literal-0123456789
routes:
  - model: chat
    targets: [{upstream: lab, model: m}]
Y
run_bad gwconfig_literal_api_key 2 literal.yaml "literal.yaml:5:" \
  "upstreams[0].api_key"
if grep -qF "sk-gwk-literal" "$tmp/err"; then
  bad "gwconfig_literal_api_key_not_echoed"
else
  ok "gwconfig_literal_api_key_not_echoed"
fi

# gwconfig_auth_unknown_key: the auth section checks its keys too.
cat >auth.yaml <<'Y'
auth: {require_keys: true, admin_key: hunter2}
upstreams:
  - {name: lab, kind: openai, base_url: "http://127.0.0.1:9/v1"}
routes:
  - model: chat
    targets: [{upstream: lab, model: m}]
Y
run_bad gwconfig_auth_unknown_key 2 auth.yaml "auth.yaml:1:" "auth.admin_key"
if grep -qF "hunter2" "$tmp/err"; then
  bad "gwconfig_auth_value_not_echoed"
else
  ok "gwconfig_auth_value_not_echoed"
fi

# gwconfig_empty_file: routes are required.
: >empty.yaml
run_bad gwconfig_empty_file 2 empty.yaml "empty.yaml" "routes"

# gwconfig_binary_file: bytes that are not YAML at all.
head -c 4096 /dev/urandom >binary.yaml
printf '\0\377\376' >>binary.yaml
run_bad gwconfig_binary_file 2 binary.yaml "binary.yaml"

# gwconfig_missing_file / gwconfig_directory / gwconfig_unreadable.
run_bad gwconfig_missing_file 2 "$tmp/nope.yaml" "nope.yaml"
mkdir dir.yaml
run_bad gwconfig_directory 2 dir.yaml "dir.yaml"
cp unknown.yaml unreadable.yaml
chmod 000 unreadable.yaml
if [ "$(id -u)" -eq 0 ] || [ -r unreadable.yaml ]; then
  echo "ok - gwconfig_unreadable # skipped: root reads mode-000 files"
else
  run_bad gwconfig_unreadable 2 unreadable.yaml "unreadable.yaml"
fi

# gwconfig_missing_env: the file is valid, but the upstream's key is not
# in the environment: a start-up failure naming the place and the
# variable (never a value).
cat >env.yaml <<Y
database: $tmp/env.db
listen: {host: 127.0.0.1, port: 0}
upstreams:
  - {name: lab, kind: openai, base_url: "http://127.0.0.1:9/v1", api_key_env: GWK_UNSET_VAR_1}
routes:
  - model: chat
    targets: [{upstream: lab, model: m}]
Y
( unset GWK_UNSET_VAR_1
  run_bad gwconfig_missing_env 1 env.yaml "env.yaml:4:" "GWK_UNSET_VAR_1"
  exit $fail ) || fail=1

# gwconfig_missing_model: a model path that does not exist.
cat >model.yaml <<Y
database: $tmp/model.db
listen: {host: 127.0.0.1, port: 0}
models:
  - {name: loc, path: $tmp/no/such/model.gguf}
routes:
  - model: chat
    targets: [{local: loc}]
Y
run_bad gwconfig_missing_model 1 model.yaml "model.yaml:4:" "models[0]" \
  "no/such/model.gguf"

# gwconfig_bad_database: the database's folder is a regular file.
echo x >afile
cat >db.yaml <<Y
database: $tmp/afile/sub/hotpath.db
listen: {host: 127.0.0.1, port: 0}
upstreams:
  - {name: lab, kind: openai, base_url: "http://127.0.0.1:9/v1"}
routes:
  - model: chat
    targets: [{upstream: lab, model: m}]
Y
run_bad gwconfig_bad_database 1 db.yaml "afile/sub/hotpath.db"

# gwconfig_empty_string: "" is refused where it is written (not later as
# "./: Is a directory"), for names and for the database.
cat >emptyname.yaml <<'Y'
listen: {host: 127.0.0.1, port: 0}
upstreams:
  - {name: "", kind: openai, base_url: "http://127.0.0.1:9/v1"}
routes:
  - model: chat
    targets: [{upstream: "", model: m}]
Y
run_bad gwconfig_empty_upstream_name 2 emptyname.yaml "emptyname.yaml:3:" \
  "upstreams[0].name: must be non-empty"
cat >emptydb.yaml <<'Y'
database: ""
listen: {host: 127.0.0.1, port: 0}
upstreams:
  - {name: lab, kind: openai, base_url: "http://127.0.0.1:9/v1"}
routes:
  - model: chat
    targets: [{upstream: lab, model: m}]
Y
run_bad gwconfig_empty_database 2 emptydb.yaml "emptydb.yaml:1:" \
  "database: must be non-empty"

# gwconfig_pasted_key_in_env / gwconfig_base_url_credentials: refused as
# config errors, and neither value is echoed.
cat >pasted.yaml <<'Y'
upstreams:
  - {name: lab, kind: openai, base_url: "http://127.0.0.1:9/v1", api_key_env: gsk_8fJ2kLmN0pQrStUvWxYz1234567890AbCdEfGhIjKlMnOpQr}
routes:
  - model: chat
    targets: [{upstream: lab, model: m}]
Y
run_bad gwconfig_pasted_key_in_env 2 pasted.yaml "pasted.yaml:2:" \
  "upstreams[0].api_key_env: must name an environment variable"
grep -qF "8fJ2kLmN" "$tmp/err" && bad gwconfig_pasted_key_not_echoed \
  || ok gwconfig_pasted_key_not_echoed
cat >userinfo.yaml <<'Y'
upstreams:
  - {name: lab, kind: openai, base_url: "https://me:sk-gwk-pw-42@127.0.0.1:9/v1"}
routes:
  - model: chat
    targets: [{upstream: lab, model: m}]
Y
run_bad gwconfig_base_url_credentials 2 userinfo.yaml "userinfo.yaml:2:" \
  "credentials in base_url are refused; use api_key_env"
grep -qF "sk-gwk-pw" "$tmp/err" && bad gwconfig_base_url_not_echoed \
  || ok gwconfig_base_url_not_echoed

# gwconfig_config_twice: a second --config is bad usage, not "last wins".
timeout 20 "$BIN" serve --config unknown.yaml --config noup.yaml >out 2>err
rc=$?
if [ $rc -eq 2 ] && [ "$(wc -l <err)" -eq 1 ] && [ ! -s out ] &&
   grep -qF -- "--config given more than once" err; then
  ok gwconfig_config_twice
else
  bad "gwconfig_config_twice: exit $rc: $(cat err)"
fi

# gwconfig_with_model_option: --config and -m together are bad usage,
# whichever comes first, and nothing starts.
for order in a b; do
  if [ $order = a ]; then
    timeout 20 "$BIN" serve --config unknown.yaml -m x.gguf >out 2>err
  else
    timeout 20 "$BIN" serve -m x.gguf --config unknown.yaml >out 2>err
  fi
  rc=$?
  if [ $rc -eq 2 ] && [ "$(wc -l <err)" -eq 1 ] && grep -qF -- "--config" err; then
    ok "gwconfig_with_model_option_$order"
  else
    bad "gwconfig_with_model_option_$order: exit $rc: $(cat err)"
  fi
done

exit $fail
