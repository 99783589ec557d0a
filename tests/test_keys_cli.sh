#!/usr/bin/env bash
# test_keys_cli.sh: `hotpath keys create|list|revoke`: a create/list/revoke
# round trip on a --db file, --json that parses, the database found through
# --config (relative to the config's folder), list/revoke on a missing
# database fail and create nothing, --routes checked against --config,
# bad arguments exit 2 with a one-line message, and the secret is printed once by create and never by
# list or on stderr.
set -u
BIN=${HOTPATH_BIN:?}
PY=${HOTPATH_PYTHON:-python3}
fail=0
ok() { echo "ok - $1"; }
bad() { echo "FAIL - $1"; fail=1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
db="$tmp/d/keys.db"

# keys_create_prints_secret_once: id and secret on stdout, a warning on
# stderr that does not contain the secret; the parent folder is created.
out=$("$BIN" keys create --name ci --budget-usd 2.5 --budget-tokens 5000 \
      --rpm 60 --tpm 10000 --routes chat,code --db "$db" 2>"$tmp/err"); rc=$?
id=$(printf '%s\n' "$out" | sed -n 's/^id: //p')
secret=$(printf '%s\n' "$out" | sed -n 's/^secret: //p')
[ $rc -eq 0 ] && [[ "$id" =~ ^k[0-9a-f]{12}$ ]] \
  && [[ "$secret" =~ ^hp-$id\.[A-Za-z0-9_-]{43}$ ]] \
  && grep -q "cannot be shown again" "$tmp/err" \
  && ! grep -qF -- "$secret" "$tmp/err" \
  && ok keys_create_prints_secret_once || bad "keys_create_prints_secret_once (rc $rc, '$out')"

out2=$("$BIN" keys create --db "$db" 2>/dev/null); rc=$?
id2=$(printf '%s\n' "$out2" | sed -n 's/^id: //p')
secret2=$(printf '%s\n' "$out2" | sed -n 's/^secret: //p')
[ $rc -eq 0 ] && [ -n "$id2" ] && [ "$id2" != "$id" ] \
  && ok keys_create_second || bad "keys_create_second (rc $rc)"

# keys_list_table: both keys, with limits and routes, no secret.
out=$("$BIN" keys list --db "$db" 2>"$tmp/err"); rc=$?
[ $rc -eq 0 ] && [[ "$out" == *"$id"*ci*"0/2.5"*"0/5000"*"60/10000"*"chat,code"* ]] \
  && [[ "$out" == *"$id2"* ]] && [[ "$out" != *"${secret#*.}"* ]] \
  && [[ "$out" != *"${secret2#*.}"* ]] && [ ! -s "$tmp/err" ] \
  && ok keys_list_table || bad "keys_list_table (rc $rc, '$out')"

# keys_list_json: parses, two objects with the documented fields.
"$BIN" keys list --json --db "$db" >"$tmp/list.json"; rc=$?
[ $rc -eq 0 ] && "$PY" - "$tmp/list.json" "$id" <<'P' && ok keys_list_json || bad "keys_list_json (rc $rc)"
import json, sys
a = json.load(open(sys.argv[1]))
assert isinstance(a, list) and len(a) == 2, a
k = a[0]
want = {"id", "name", "created", "revoked", "budget_usd", "spent_usd",
        "budget_tokens", "spent_tokens", "rpm", "tpm", "routes"}
assert set(k) == want, set(k) ^ want
assert k["id"] == sys.argv[2] and k["name"] == "ci" and k["revoked"] is False
assert k["budget_usd"] == 2.5 and k["budget_tokens"] == 5000
assert k["rpm"] == 60 and k["tpm"] == 10000 and k["routes"] == ["chat", "code"]
assert a[1]["budget_usd"] is None and a[1]["routes"] == []
P
! grep -qF -- "${secret#*.}" "$tmp/list.json" && ok keys_list_json_no_secret \
  || bad keys_list_json_no_secret

# keys_revoke: revoked shows in list; revoking again is fine; an unknown
# id exits 1.
out=$("$BIN" keys revoke "$id" --db "$db"); rc=$?
[ $rc -eq 0 ] && [ "$out" == "revoked $id" ] && ok keys_revoke || bad "keys_revoke (rc $rc, '$out')"
"$BIN" keys revoke "$id" --db "$db" >/dev/null; rc=$?
[ $rc -eq 0 ] && ok keys_revoke_twice || bad "keys_revoke_twice (rc $rc)"
"$BIN" keys list --json --db "$db" | "$PY" -c '
import json, sys
a = json.load(sys.stdin)
assert a[0]["revoked"] is True and a[1]["revoked"] is False' \
  && ok keys_revoked_in_list || bad keys_revoked_in_list
err=$("$BIN" keys revoke k000000000000 --db "$db" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && [[ "$err" == *"no key"* ]] && ok keys_revoke_unknown \
  || bad "keys_revoke_unknown (rc $rc, '$err')"

# keys_revoke_secret_not_echoed: a pasted secret is refused (exit 2) and
# not repeated on stderr.
err=$("$BIN" keys revoke "$secret2" --db "$db" 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] && [[ "$err" != *"${secret2#*.}"* ]] && [ -n "$err" ] \
  && ok keys_revoke_secret_not_echoed || bad "keys_revoke_secret_not_echoed (rc $rc)"
err=$("$BIN" keys list "$secret2" --db "$db" 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] && [[ "$err" != *"${secret2#*.}"* ]] \
  && ok keys_list_arg_not_echoed || bad "keys_list_arg_not_echoed (rc $rc)"

# keys_config_database: --config FILE uses its `database`, relative to the
# file's folder.
mkdir -p "$tmp/conf"
cat >"$tmp/conf/gw.yaml" <<'Y'
upstreams:
  - {name: lab, kind: openai, base_url: "https://lab.example/v1"}
routes:
  - model: chat
    targets: [{upstream: lab, model: m}]
database: state/gw.db
Y
(cd "$tmp" && "$BIN" keys create --config conf/gw.yaml >/dev/null 2>&1); rc=$?
[ $rc -eq 0 ] && [ -f "$tmp/conf/state/gw.db" ] \
  && [ "$("$BIN" keys list --json --config "$tmp/conf/gw.yaml" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')" == 1 ] \
  && ok keys_config_database || bad "keys_config_database (rc $rc)"

# keys_default_database: neither flag: $XDG_DATA_HOME/hotpath/hotpath.db.
XDG_DATA_HOME="$tmp/xdg" "$BIN" keys create >/dev/null 2>&1; rc=$?
[ $rc -eq 0 ] && [ -f "$tmp/xdg/hotpath/hotpath.db" ] \
  && ok keys_default_database || bad "keys_default_database (rc $rc)"

# keys_missing_db_creates_nothing: list and revoke on a path with no
# database fail (exit 1, naming the path) and create neither the file nor
# its folder; so does the default database under a fresh HOME.
err=$("$BIN" keys list --db "$tmp/nonexistent/dir/k.db" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && [[ "$err" == *"$tmp/nonexistent/dir/k.db"*"no key database"* ]] \
  && [ ! -e "$tmp/nonexistent" ] \
  && ok keys_list_missing_db || bad "keys_list_missing_db (rc $rc, '$err')"
mkdir -p "$tmp/emptydir"
err=$("$BIN" keys revoke k000000000000 --db "$tmp/emptydir/k.db" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && [[ "$err" == *"$tmp/emptydir/k.db"* ]] \
  && [ -z "$(ls -A "$tmp/emptydir")" ] \
  && ok keys_revoke_missing_db || bad "keys_revoke_missing_db (rc $rc, '$err')"
for a in list "revoke k000000000000"; do
  err=$(env -u XDG_DATA_HOME HOME="$tmp/home" "$BIN" keys $a 2>&1 >/dev/null); rc=$?
  [ $rc -eq 1 ] && [[ "$err" == *"$tmp/home/.local/share/hotpath/hotpath.db"* ]] \
    && [ ! -e "$tmp/home" ] \
    && ok "keys_${a%% *}_missing_default_db" \
    || bad "keys_${a%% *}_missing_default_db (rc $rc, '$err')"
done

# keys_create_routes_checked_with_config: with --config, a route the
# config lacks is refused like POST /admin/keys does, and nothing is
# created; known routes pass.
err=$("$BIN" keys create --config "$tmp/conf/gw.yaml" --routes nope,chat 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] && [[ "$err" == *"routes[0]: not a route of this gateway"* ]] \
  && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] \
  && [ "$("$BIN" keys list --json --config "$tmp/conf/gw.yaml" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')" == 1 ] \
  && ok keys_create_unknown_route_with_config \
  || bad "keys_create_unknown_route_with_config (rc $rc, '$err')"
err=$("$BIN" keys create --config "$tmp/conf/gw.yaml" --routes "chat, nope2" 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] && [[ "$err" == *"routes[1]: not a route of this gateway"* ]] \
  && ok keys_create_unknown_route_second || bad "keys_create_unknown_route_second (rc $rc, '$err')"
"$BIN" keys create --config "$tmp/conf/gw.yaml" --routes " chat " >/dev/null 2>&1; rc=$?
[ $rc -eq 0 ] && ok keys_create_known_route_with_config \
  || bad "keys_create_known_route_with_config (rc $rc)"
# Without a config there is nothing to check against: kept as before.
"$BIN" keys create --db "$db" --routes nope >/dev/null 2>&1; rc=$?
[ $rc -eq 0 ] && ok keys_create_route_unchecked_without_config \
  || bad "keys_create_route_unchecked_without_config (rc $rc)"

# keys_bad_args_exit_2: each bad usage exits 2 with one line on stderr.
check_usage() { # name, args...
  local name=$1; shift
  local err; err=$("$BIN" keys "$@" 2>&1 >/dev/null); local rc=$?
  local lines; lines=$(printf '%s\n' "$err" | wc -l)
  if [ $rc -eq 2 ] && [ -n "$err" ] && [ "$lines" -eq 1 ]; then ok "$name"
  else bad "$name (rc $rc, '$err')"; fi
}
check_usage keys_bad_negative_rpm create --rpm -1 --db "$db"
check_usage keys_bad_negative_tpm create --tpm -5 --db "$db"
check_usage keys_bad_negative_budget create --budget-usd -0.5 --db "$db"
check_usage keys_bad_negative_tokens create --budget-tokens -1 --db "$db"
check_usage keys_bad_number create --rpm 5x --db "$db"
check_usage keys_bad_unknown_flag create --frobnicate --db "$db"
check_usage keys_bad_missing_value create --db
check_usage keys_bad_routes create --routes "a,,b" --db "$db"
check_usage keys_bad_empty_name create --name '' --db "$tmp/noname/k.db"
[ ! -e "$tmp/noname" ] && ok keys_bad_empty_name_creates_nothing \
  || bad keys_bad_empty_name_creates_nothing
check_usage keys_bad_missing_id revoke --db "$db"
check_usage keys_bad_id revoke not-an-id --db "$db"
check_usage keys_bad_list_flag list --yaml --db "$db"
check_usage keys_bad_db_and_config list --db "$db" --config "$tmp/conf/gw.yaml"
check_usage keys_bad_action rotate
"$BIN" keys >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] && ok keys_no_action || bad "keys_no_action (rc $rc)"

# keys_help: --help on each exits 0 with usage on stdout.
for a in "" create list revoke; do
  out=$("$BIN" keys $a --help 2>/dev/null); rc=$?
  [ $rc -eq 0 ] && [[ "$out" == usage:* ]] && ok "keys_help_${a:-top}" \
    || bad "keys_help_${a:-top} (rc $rc)"
done

# keys_garbage_db: not a database -> exit 1 naming the path.
head -c 4096 /dev/urandom >"$tmp/garbage.db"
err=$("$BIN" keys list --db "$tmp/garbage.db" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && [[ "$err" == *"$tmp/garbage.db"* ]] && ok keys_garbage_db \
  || bad "keys_garbage_db (rc $rc, '$err')"

exit $fail
