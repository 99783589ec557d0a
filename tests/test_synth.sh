#!/usr/bin/env bash
# test_synth.sh: `hotpath synth` writes loadable random-weight GGUFs.
#
# Spec (synth-N):
#   synth-1  the tiny shape in q8_0, q4_0, f16 and f32: exit 0, and the file
#            has the llama metadata and every tensor with llama.cpp's name,
#            shape and type (norms f32, no output.weight: tied embeddings).
#   synth-2  `hotpath run -m OUT --temp 0 -p hi -n 8` runs on each file.
#   synth-3  same seed, same bytes; another seed, other bytes.
#   synth-4  --no-partial-utf8 zeroes the embedding rows of <0x80>..<0xFF>.
#   synth-5  --vocab copies a real tokenizer (when the shared vocab exists);
#            a disagreeing --vocab-size is refused.
#   synth-6  bad arguments exit 2 with a message.
#   synth-7  an unwritable output fails cleanly (exit 1, message, no file).
set -u
BIN=${HOTPATH_BIN:?HOTPATH_BIN not set}
PY=${HOTPATH_PYTHON:-/usr/bin/python3}
SHARED=${HOTPATH_SHARED:-}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0

ok() { echo "ok   $1"; }
fail() { echo "FAIL $1"; fails=$((fails + 1)); }
check() { # name, command...
    local name=$1
    shift
    if "$@" >"$TMP/out" 2>&1; then ok "$name"; else fail "$name"; cat "$TMP/out"; fi
}

# GGUF inspector: checks metadata and tensor table against the tiny shape.
cat >"$TMP/inspect.py" <<'PYEOF'
import struct, sys
path, want_type = sys.argv[1], sys.argv[2]
TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8}
ROWB = {0: lambda n: 4 * n, 1: lambda n: 2 * n, 2: lambda n: n // 32 * 18,
        8: lambda n: n // 32 * 34}
f = open(path, "rb").read()
off = 0
def rd(fmt):
    global off
    v = struct.unpack_from("<" + fmt, f, off)
    off += struct.calcsize("<" + fmt)
    return v[0] if len(v) == 1 else v
def rstr():
    n = rd("Q")
    global off
    s = f[off:off + n].decode("utf-8", "surrogateescape")
    off += n
    return s
SC = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
def rval(t):
    if t == 8:
        return rstr()
    if t == 9:
        et, n = rd("I"), rd("Q")
        return [rval(et) for _ in range(n)]
    return rd(SC[t])
assert rd("I") == 0x46554747, "magic"
assert rd("I") == 3, "version"
nt, nkv = rd("Q"), rd("Q")
kv = {}
for _ in range(nkv):
    k = rstr()
    kv[k] = rval(rd("I"))
tensors = {}
for _ in range(nt):
    name = rstr()
    nd = rd("I")
    ne = [rd("Q") for _ in range(nd)]
    tensors[name] = (ne, rd("I"), rd("Q"))
align = kv.get("general.alignment", 32)
data = (off + align - 1) // align * align
exp = {
    "general.architecture": "llama", "llama.embedding_length": 64,
    "llama.block_count": 2, "llama.feed_forward_length": 128,
    "llama.attention.head_count": 4, "llama.attention.head_count_kv": 2,
    "llama.rope.dimension_count": 16, "llama.context_length": 2048,
    "tokenizer.ggml.model": "llama", "tokenizer.ggml.bos_token_id": 1,
    "tokenizer.ggml.eos_token_id": 2, "tokenizer.ggml.unknown_token_id": 0,
}
for k, v in exp.items():
    assert kv.get(k) == v, (k, kv.get(k), v)
assert abs(kv["llama.attention.layer_norm_rms_epsilon"] - 1e-5) < 1e-9
assert kv["general.file_type"] == {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 7}[want_type]
toks = kv["tokenizer.ggml.tokens"]
assert len(toks) == 512 and len(set(toks)) == 512, "unique tokens"
assert toks[:3] == ["<unk>", "<s>", "</s>"] and toks[3] == "<0x00>" and toks[258] == "<0xFF>"
assert kv["tokenizer.ggml.token_type"][3:259] == [6] * 256
sc = kv["tokenizer.ggml.scores"][259:]
assert all(a > b for a, b in zip(sc, sc[1:])), "descending scores"
t = TYPES[want_type]
want = {"token_embd.weight": ([64, 512], t), "output_norm.weight": ([64], 0)}
for l in range(2):
    b = f"blk.{l}."
    want.update({b + "attn_norm.weight": ([64], 0), b + "ffn_norm.weight": ([64], 0),
                 b + "attn_q.weight": ([64, 64], t), b + "attn_k.weight": ([64, 32], t),
                 b + "attn_v.weight": ([64, 32], t), b + "attn_output.weight": ([64, 64], t),
                 b + "ffn_gate.weight": ([64, 128], t), b + "ffn_up.weight": ([64, 128], t),
                 b + "ffn_down.weight": ([128, 64], t)})
assert set(tensors) == set(want), set(tensors) ^ set(want)
end = 0
for name, (ne, ty, o) in tensors.items():
    assert (ne, ty) == want[name], (name, ne, ty, want[name])
    rows = ne[1] if len(ne) > 1 else 1
    end = max(end, data + o + ROWB[ty](ne[0]) * rows)
    if len(ne) == 1:  # norm weights are ones
        assert struct.unpack_from("<64f", f, data + o) == (1.0,) * 64, name
assert end <= len(f) <= end + align, ("file size", end, len(f))
print("layout ok", want_type)
PYEOF

# Row r of the q8_0 embedding: all scales and quants zero?
cat >"$TMP/zero_rows.py" <<'PYEOF'
import subprocess, struct, sys
path = sys.argv[1]
f = open(path, "rb").read()
# find token_embd data: reuse the inspector's parse by a small scan
off = 24
def rd(fmt):
    global off
    v = struct.unpack_from("<" + fmt, f, off); off += struct.calcsize("<" + fmt)
    return v[0]
def skip(t):
    global off
    if t == 8: n = rd("Q"); off += n
    elif t == 9:
        et = rd("I"); n = rd("Q")
        for _ in range(n): skip(et)
    else: off += {0:1,1:1,2:2,3:2,4:4,5:4,6:4,7:1,10:8,11:8,12:8}[t]
nt, nkv = struct.unpack_from("<QQ", f, 8)
for _ in range(nkv):
    n = rd("Q"); off += n; skip(rd("I"))
tab = {}
for _ in range(nt):
    n = rd("Q"); name = f[off:off+n].decode(); off += n
    nd = rd("I"); ne = [rd("Q") for _ in range(nd)]; ty = rd("I"); o = rd("Q")
    tab[name] = (ne, ty, o)
data = (off + 31) // 32 * 32
ne, ty, o = tab["token_embd.weight"]
rb = ne[0] // 32 * 34
def row_zero(r):
    return f[data + o + r * rb: data + o + (r + 1) * rb] == bytes(rb)
want_zero = sys.argv[2] == "zero"
bad = [r for r in range(3 + 0x80, 3 + 0x100) if row_zero(r) != want_zero]
others = [r for r in range(0, 3 + 0x80) if row_zero(r)]
assert not bad and not others, (bad[:5], others[:5])
print("rows ok")
PYEOF

# synth-1, synth-2
for t in q8_0 q4_0 f16 f32; do
    out="$TMP/tiny-$t.gguf"
    check "synth-1.$t writes" "$BIN" synth --shape tiny --type "$t" -o "$out"
    check "synth-1.$t layout" "$PY" "$TMP/inspect.py" "$out" "$t"
    check "synth-2.$t runs" "$BIN" run -m "$out" --temp 0 -p hi -n 8
done

# synth-3
"$BIN" synth --shape tiny --seed 5 -o "$TMP/a.gguf" 2>/dev/null
"$BIN" synth --shape tiny --seed 5 -o "$TMP/b.gguf" 2>/dev/null
"$BIN" synth --shape tiny --seed 6 -o "$TMP/c.gguf" 2>/dev/null
check "synth-3.1 same seed, same file" cmp -s "$TMP/a.gguf" "$TMP/b.gguf"
check "synth-3.2 other seed, other file" bash -c "! cmp -s '$TMP/a.gguf' '$TMP/c.gguf'"
check "synth-3.3 default shape overrides" "$BIN" synth --hidden 64 --layers 1 --heads 2 --ffn 64 --vocab-size 300 --type f32 -o "$TMP/custom.gguf"

# synth-4
check "synth-4.1 --no-partial-utf8 writes" "$BIN" synth --shape tiny --no-partial-utf8 -o "$TMP/np.gguf"
check "synth-4.2 byte rows 0x80..0xFF zero" "$PY" "$TMP/zero_rows.py" "$TMP/np.gguf" zero
check "synth-4.3 without it, no zero rows" "$PY" "$TMP/zero_rows.py" "$TMP/tiny-q8_0.gguf" keep
check "synth-4.4 runs" "$BIN" run -m "$TMP/np.gguf" --temp 0 -p hi -n 8

# synth-5
SPM="$SHARED/vocab/ggml-vocab-llama-spm.gguf"
if [ -n "$SHARED" ] && [ -f "$SPM" ]; then
    check "synth-5.1 --vocab copies a tokenizer" "$BIN" synth --shape tiny --vocab "$SPM" --no-partial-utf8 -o "$TMP/spm.gguf"
    check "synth-5.2 runs with it" "$BIN" run -m "$TMP/spm.gguf" --temp 0 -p hi -n 8
    "$BIN" synth --shape tiny --vocab "$SPM" --vocab-size 512 -o "$TMP/x.gguf" >"$TMP/out" 2>&1
    rc=$?
    if [ $rc -eq 2 ] && grep -q "disagrees" "$TMP/out"; then ok "synth-5.3 vocab size mismatch refused"; else fail "synth-5.3 rc=$rc"; cat "$TMP/out"; fi
else
    echo "skipped synth-5: no shared vocab"
fi

# synth-6
bad_args=(
    "--shape tiny"
    "-o $TMP/x.gguf"
    "--shape nosuch -o $TMP/x.gguf"
    "--shape tiny --type q5_k -o $TMP/x.gguf"
    "--shape tiny --heads 5 -o $TMP/x.gguf"
    "--shape tiny --kv-heads 3 -o $TMP/x.gguf"
    "--shape tiny --hidden 48 -o $TMP/x.gguf"
    "--shape tiny --vocab-size 100 -o $TMP/x.gguf"
    "--shape tiny --layers 0 -o $TMP/x.gguf"
    "--shape tiny --layers x -o $TMP/x.gguf"
    "--shape tiny --seed -1 -o $TMP/x.gguf"
    "--shape tiny --vocab $TMP/none.gguf -o $TMP/x.gguf"
    "--shape tiny --bogus -o $TMP/x.gguf"
    "--shape tiny -o $TMP/x.gguf extra"
    "--shape tiny -o"
    "--hidden 64 -o $TMP/x.gguf"
)
i=0
for a in "${bad_args[@]}"; do
    i=$((i + 1))
    # shellcheck disable=SC2086
    "$BIN" synth $a >"$TMP/out" 2>&1
    rc=$?
    if [ $rc -eq 2 ] && [ -s "$TMP/out" ] && [ ! -e "$TMP/x.gguf" ]; then
        ok "synth-6.$i bad args: $a"
    else
        fail "synth-6.$i bad args: $a (rc=$rc)"
        cat "$TMP/out"
    fi
done
"$BIN" synth --help | grep -q -- "--no-partial-utf8" && ok "synth-6.help" || fail "synth-6.help"

# synth-7
"$BIN" synth --shape tiny -o /nonexistent-dir/x.gguf >"$TMP/out" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q "/nonexistent-dir/x.gguf" "$TMP/out"; then ok "synth-7.1 unwritable path"; else fail "synth-7.1 rc=$rc"; cat "$TMP/out"; fi
mkdir "$TMP/dir.gguf"
"$BIN" synth --shape tiny -o "$TMP/dir.gguf" >"$TMP/out" 2>&1
rc=$?
if [ $rc -eq 1 ] && [ ! -e "$TMP/dir.gguf.partial" ]; then ok "synth-7.2 directory as output"; else fail "synth-7.2 rc=$rc"; cat "$TMP/out"; fi

if [ $fails -ne 0 ]; then
    echo "$fails failed"
    exit 1
fi
echo "all passed"
