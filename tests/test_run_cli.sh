#!/usr/bin/env bash
# test_run_cli.sh: `hotpath run` reproduces llama2.c's greedy golden text
# for stories260K, prints speed on stderr, and refuses bad input cleanly.
set -u
BIN=${HOTPATH_BIN:?}
SHARED=${HOTPATH_SHARED:-../shared}
MODEL=$SHARED/models/stories260K.gguf
G=$SHARED/models/golden
fail=0
ok() { echo "ok - $1"; }
bad() { echo "FAIL - $1"; fail=1; }

if [ ! -f "$MODEL" ]; then echo "skipped: $MODEL not found"; exit 0; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# run_golden_K: the completion equals the .txt after the prompt; the
# prompt's token count comes from `hotpath tokenize` (with BOS, so -1).
for k in 1 2 3; do
  prompt=$(cat "$G/stories260K_t0_n100_prompt$k.prompt")
  ntok=$("$BIN" tokenize -m "$MODEL" --no-bos "$prompt" | wc -w)
  n=$((100 - ntok))
  "$BIN" run -m "$MODEL" -p "$prompt" -n "$n" --temp 0 -t 1 >"$tmp/out" 2>"$tmp/err"
  rc=$?
  # golden .txt = prompt + completion + "\n"; run prints completion + "\n"
  want=$(tail -c +$(( ${#prompt} + 1 )) "$G/stories260K_t0_n100_prompt$k.txt")
  got=$(cat "$tmp/out")
  if [ $rc -eq 0 ] && [ "$got" == "$want" ]; then ok "run_golden_$k"; else bad "run_golden_$k (rc $rc)"; diff <(echo "$want") <(echo "$got") | head -5; fi
  grep -q "generation: $n tokens" "$tmp/err" && grep -q "tokens/s" "$tmp/err" \
    && ok "run_speed_on_stderr_$k" || bad "run_speed_on_stderr_$k"
done

# run_file_prompt: -f reads the prompt from a file, same output.
printf 'Once upon a time' >"$tmp/p.txt"
"$BIN" run -m "$MODEL" -f "$tmp/p.txt" -n 96 --temp 0 -t 1 >"$tmp/out2" 2>/dev/null
"$BIN" run -m "$MODEL" -p 'Once upon a time' -n 96 --temp 0 -t 1 >"$tmp/out1" 2>/dev/null
cmp -s "$tmp/out1" "$tmp/out2" && ok "run_file_prompt" || bad "run_file_prompt"

# run_seed_reproducible: same seed, same sampled text; another seed differs.
a=$("$BIN" run -m "$MODEL" -p 'The cat' -n 40 --temp 1 --seed 7 2>/dev/null)
b=$("$BIN" run -m "$MODEL" -p 'The cat' -n 40 --temp 1 --seed 7 2>/dev/null)
c=$("$BIN" run -m "$MODEL" -p 'The cat' -n 40 --temp 1 --seed 8 2>/dev/null)
[ "$a" == "$b" ] && ok "run_seed_reproducible" || bad "run_seed_reproducible"
[ "$a" != "$c" ] && ok "run_seed_changes_text" || bad "run_seed_changes_text"

# run_bench: --bench prints pp and tg figures.
"$BIN" run -m "$MODEL" --bench -p 32 -n 16 --reps 1 -t 1 >"$tmp/bench" 2>/dev/null \
  && grep -q "^pp32: .* tokens/s" "$tmp/bench" && grep -q "^tg16: .* tokens/s" "$tmp/bench" \
  && ok "run_bench" || bad "run_bench"

# run_errors: each bad input exits non-zero with a message, never a crash.
expect_fail() { # name expected_rc pattern args...
  local name=$1 want=$2 pat=$3; shift 3
  "$BIN" "$@" >"$tmp/o" 2>"$tmp/e"; local rc=$?
  if [ $rc -eq "$want" ] && grep -q -- "$pat" "$tmp/e"; then ok "$name"; else bad "$name (rc $rc: $(head -c 200 "$tmp/e"))"; fi
}
expect_fail run_missing_model 2 "-m MODEL is required" run -p hi
expect_fail run_missing_prompt 2 "give a prompt" run -m "$MODEL"
expect_fail run_bad_number 2 "invalid value 'abc' for --n-predict" run -m "$MODEL" -p hi -n abc
expect_fail run_bad_temp 2 "invalid value" run -m "$MODEL" -p hi --temp -1
expect_fail run_unknown_option 2 "unknown" run -m "$MODEL" -p hi --bogus
expect_fail run_no_such_file 1 "nope.gguf" run -m "$tmp/nope.gguf" -p hi
head -c 1000 "$MODEL" >"$tmp/trunc.gguf"
expect_fail run_truncated_model 1 "trunc.gguf" run -m "$tmp/trunc.gguf" -p hi
expect_fail run_context_overflow 1 "maximum context length" run -m "$MODEL" -p hi -n 5000 -c 256
expect_fail unknown_command 2 "unknown command" frobnicate
"$BIN" run --help | grep -q -- "--n-predict" && ok "run_help" || bad "run_help"
"$BIN" --help | grep -q "serve" && ok "main_help" || bad "main_help"

if [ $fail -ne 0 ]; then echo "test_run_cli: FAILED"; exit 1; fi
echo "test_run_cli: all passed"
