"""test_forward_ref.py: the C forward pass (dumplogits) against the float64
NumPy reference (tests/ref/llama_ref.py), per weight type, plus the
stories260K golden greedy continuation.

Cases:
  forward-1.<type>  random llama fixture (mkgguf, 2 layers, GQA 4/2 heads,
                    partial RoPE on one of the fixtures): last-token logits
                    match the reference within the type's tolerance
  forward-2.<type>  token-by-token logits match prompt-at-once logits
  forward-3.<type>  a sequence's logits are bit-identical alone and batched
                    with another sequence (prompt and decode steps mixed)
  forward-4         stories260K: logits match the reference; greedy ids
                    after BOS + "Once upon a time" equal the llama2.c golden

Tolerances (d = max |C - ref| over the vocabulary, spread = max - min of
the reference logits):
  f32, f16, bf16: the weights are exact in both paths (f16/bf16 widen to
    f32 without rounding), so only float32 accumulation differs from
    float64: relative error ~1e-7 per op, ~1e-6 after a few hundred-term
    dot products and two layers. Measured d/spread ~1e-7; bound 1e-4.
  q8_0, q4_0: weights are exact too (the reference dequantizes the same
    blocks), but the C kernels may quantize activations to Q8_0 blocks: each
    activation is rounded to a step of max|block|/127, a relative error of
    at most 0.4% of the block maximum (rms ~0.1%), which enters every
    matmul of every layer. Measured d/spread ~0.5%; bound 3%, still far
    below what a wrong pass produces (d ~ spread).
  q4_1, q5_0, q5_1, q4_k, q5_k, q6_k and q4_k_m (Q4_K matrices with Q6_K
    attn_v, ffn_down and output, as llama.cpp's Q4_K_M): the same argument
    as q8_0/q4_0. The reference decodes the very same blocks (its NumPy
    dequantizers are written from the GGUF layouts, independently of the C
    code), so the weights are exact in both; the AVX2 kernels quantize the
    activations to the same Q8 blocks. Bound 3%, measured ~0.5-1%. The
    K-quant fixtures are 256 wide (super-blocks are 256 elements).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

SRC = os.environ.get("HOTPATH_SRC",
                     os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(SRC, "tests", "ref"))
import llama_ref  # noqa: E402

TOOLS = os.environ.get("HOTPATH_TOOLS", os.path.join(SRC, "build"))
SHARED = os.environ.get("HOTPATH_SHARED", os.path.join(SRC, "..", "shared"))
MKGGUF = os.path.join(TOOLS, "mkgguf")
DUMP = os.path.join(TOOLS, "dumplogits")

TOL = {"f32": 1e-4, "f16": 1e-4, "bf16": 1e-4, "q8_0": 0.03, "q4_0": 0.03,
       "q4_1": 0.03, "q5_0": 0.03, "q5_1": 0.03, "q4_k": 0.03, "q5_k": 0.03,
       "q6_k": 0.03, "q4_k_m": 0.03}
# mkgguf arguments beyond --type: K-quant rows must be multiples of 256.
WIDE = ["--hidden", "256", "--ffn", "512"]
FIXTURE_ARGS = {"q4_k": WIDE, "q5_k": WIDE, "q6_k": WIDE, "q4_k_m": WIDE}
TOKENS = [1, 5, 7, 9, 200, 30, 17, 261, 299, 3, 42]

failures = []


def check(name, ok, detail=""):
    print("%s %s %s" % ("ok  " if ok else "FAIL", name, detail))
    if not ok:
        failures.append(name)


def run(args, env=None):
    p = subprocess.run(args, capture_output=True, text=True, env=env)
    if p.returncode not in (0, 1):
        raise RuntimeError("%s failed (%d): %s" % (args, p.returncode,
                                                     p.stderr))
    return p


def logits(model, toks, *opts):
    p = run([DUMP, *opts, model, *map(str, toks)])
    if p.returncode != 0:
        raise RuntimeError("dumplogits: %s" % p.stderr)
    return np.array([float(x) for x in p.stdout.split()])


def fixture_cases(tmp):
    for i, t in enumerate(TOL):
        path = os.path.join(tmp, "m_%s.gguf" % t)
        extra = []
        if i % 2 == 1:  # half the fixtures: partial RoPE and tied output
            extra = ["--rope-dim", "8", "--tied"]
        extra += FIXTURE_ARGS.get(t, [])
        typ = ["--mix", t] if t == "q4_k_m" else ["--type", t]
        subprocess.run([MKGGUF, "-o", path, *typ, "--seed", str(11 + i),
                        *extra], check=True)
        ref = llama_ref.Llama(path).logits(TOKENS)[-1]
        spread = ref.max() - ref.min()
        got = logits(path, TOKENS)
        d = np.abs(got - ref).max()
        check("forward-1.%s" % t, d < TOL[t] * spread,
              "d=%.3g spread=%.3g d/spread=%.2g bound=%g" %
              (d, spread, d / spread, TOL[t]))
        inc = logits(path, TOKENS, "--incremental")
        di = np.abs(inc - got).max()
        # Each token's row takes the same arithmetic in both modes except
        # for the matmul tile shape, which the kernel contract makes
        # irrelevant; allow float noise only.
        check("forward-2.%s" % t, di <= 1e-5 * spread, "d=%.3g" % di)
        p = run([DUMP, "--batch-check", path, *map(str, TOKENS)])
        check("forward-3.%s" % t, p.returncode == 0,
              p.stdout.strip() + p.stderr.strip())


def stories_cases():
    model = os.path.join(SHARED, "models", "stories260K.gguf")
    golden = os.path.join(SHARED, "models", "golden",
                          "stories260K_t0_n100_prompt1.ids")
    if not (os.path.exists(model) and os.path.exists(golden)):
        print("skipped forward-4: stories260K not found under", SHARED)
        return
    prompt = [1, 403, 407, 261, 378]  # BOS + "Once upon a time"
    ref = llama_ref.Llama(model).logits(prompt)[-1]
    got = logits(model, prompt)
    spread = ref.max() - ref.min()
    d = np.abs(got - ref).max()
    check("forward-4.1 stories260K logits", d < 1e-4 * spread,
          "d=%.3g spread=%.3g" % (d, spread))
    want = open(golden).read().split()[4:]
    p = run([DUMP, "--greedy", str(len(want)), model, *map(str, prompt)])
    have = p.stdout.split()
    first_bad = next((i for i, (a, b) in enumerate(zip(have, want))
                      if a != b), None)
    check("forward-4.2 stories260K greedy == golden", have == want,
          "" if have == want else "first difference at %s" % first_bad)


def main():
    for exe in (MKGGUF, DUMP):
        if not os.access(exe, os.X_OK):
            print("FAIL: %s not built (HOTPATH_TOOLS=%s)" % (exe, TOOLS))
            return 1
    with tempfile.TemporaryDirectory() as tmp:
        fixture_cases(tmp)
    stories_cases()
    if failures:
        print("%d failure(s): %s" % (len(failures), ", ".join(failures)))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
