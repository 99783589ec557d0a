"""test_model_arch.py: every architecture hotpath binds, from GGUF and from
Hugging Face folders, against the float64 NumPy reference
(tests/ref/arch_ref.py, written from the architectures' definitions).

Cases:
  arch-1.<arch>.<type>  GGUF fixture (f32 and q8_0) of llama, mistral,
                        qwen2, qwen3, gemma2, gemma3, phi3: last-token
                        logits match the reference; token-by-token equals
                        prompt-at-once; batch invariance (bit equality)
  arch-2.<variant>      llama3 RoPE scaling from metadata, and from a
                        rope_freqs.weight tensor; linear scaling
  arch-3.*              sliding window longer prompts (window 5 and 6, 40
                        tokens: windows crossing KV blocks), soft-capping
                        (gemma2 attention 3, final 10: values that bite)
  arch-4.<arch>         HF folder (BF16 safetensors, config.json, a
                        byte-level tokenizer.json) of llama, qwen2, qwen3,
                        gemma2, gemma3, phi3, mistral (window), llama with
                        llama3 rope_scaling vs the reference; llama and
                        qwen2 also with --quantize q8_0
  arch-5                the same llama as GGUF (f32) and HF folder (f32):
                        the same greedy tokens
  arch-6.*              bad input: a tensor shape that disagrees with the
                        metadata, a safetensors header with offsets past
                        the data: load fails with a message naming the
                        tensor, never a crash
  arch-7.*              hotpath run -m FOLDER [--quantize q8_0] prints a
                        completion (exit 0); a bad --quantize value is a
                        usage error (exit 2)

Tolerances (d = max |C - ref|, spread = max - min of the reference):
  f32 GGUF, BF16/F32 HF: weights are exact in both paths; only float32
    accumulation and float32 transcendental functions (tanh, exp, cos)
    differ from float64: bound 1e-4 * spread (measured ~1e-6).
  q8_0 (GGUF, or HF --quantize q8_0): the reference uses the exact stored
    weights (GGUF) or the unquantized ones (HF); the C kernels quantize
    activations to Q8 blocks as for llama: bound 3% of spread.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

SRC = os.environ.get("HOTPATH_SRC",
                     os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(SRC, "tests", "ref"))
import arch_ref as ar  # noqa: E402

TOOLS = os.environ.get("HOTPATH_TOOLS", os.path.join(SRC, "build"))
DUMP = os.path.join(TOOLS, "dumplogits")
TOL = {"f32": 1e-4, "q8_0": 0.03, "BF16": 1e-4, "F32": 1e-4}
TOKENS = [1, 5, 7, 9, 200, 30, 17, 261, 299, 3, 42, 100, 12, 77, 250, 8,
          19, 64, 33, 128]
LONG = [(7 * i + 3) % 250 + 3 for i in range(40)]

failures = []


def check(name, ok, detail=""):
    print("%s %s %s" % ("ok  " if ok else "FAIL", name, detail))
    if not ok:
        failures.append(name)


def dump(model, toks, *opts):
    p = subprocess.run([DUMP, *opts, model, *map(str, toks)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("dumplogits %s: %s" % (" ".join(opts), p.stderr))
    return p.stdout


def compare(name, model, c, w, toks, tol, *opts, full=True):
    ref = ar.logits(c, w, toks)[-1]
    spread = ref.max() - ref.min()
    got = np.array([float(x) for x in dump(model, toks, *opts).split()])
    d = np.abs(got - ref).max()
    check(name, d < tol * spread, "d=%.3g spread=%.3g d/spread=%.2g" %
          (d, spread, d / spread))
    if not full:
        return
    inc = np.array([float(x) for x in
                    dump(model, toks, "--incremental", *opts).split()])
    di = np.abs(inc - got).max()
    check(name + " incremental", di <= 1e-5 * spread, "d=%.3g" % di)
    p = subprocess.run([DUMP, "--batch-check", *opts, model, *map(str, toks)],
                       capture_output=True, text=True)
    check(name + " batch-invariant", p.returncode == 0,
          (p.stdout + p.stderr).strip())


def gguf_cases(tmp):
    for i, arch in enumerate(["llama", "mistral", "qwen2", "qwen3", "gemma2",
                              "gemma3", "phi3"]):
        c = ar.make_config(arch)
        w = ar.make_weights(c, 100 + i)
        for t in ("f32", "q8_0"):
            path = os.path.join(tmp, "%s_%s.gguf" % (arch, t))
            dec = ar.write_gguf(path, c, w, t)
            compare("arch-1.%s.%s" % (arch, t), path, c, dec, TOKENS, TOL[t],
                    full=(t == "f32"))


def rope_cases(tmp):
    rs = {"type": "llama3", "factor": 8.0, "low": 1.0, "high": 4.0,
          "orig": 64}
    c = ar.make_config("llama", rope_scaling=rs)
    w = ar.make_weights(c, 7)
    a = "llama."
    path = os.path.join(tmp, "l3_meta.gguf")
    dec = ar.write_gguf(path, c, w, extra_kv={
        a + "rope.scaling.type": "llama3", a + "rope.scaling.factor": 8.0,
        a + "rope.scaling.low_freq_factor": 1.0,
        a + "rope.scaling.high_freq_factor": 4.0,
        a + "rope.scaling.original_context_length": 64})
    compare("arch-2.llama3-metadata", path, c, dec, LONG, 1e-4, full=False)
    # the same scaling as llama.cpp's converter writes it: divisors
    c0 = dict(c, rope_scaling=None)
    div = ar.inv_freq(c0) / ar.inv_freq(c)
    path = os.path.join(tmp, "l3_freqs.gguf")
    dec = ar.write_gguf(path, c, w,
                        extra_tensors={"rope_freqs.weight": div})
    compare("arch-2.llama3-rope_freqs", path, c, dec, LONG, 1e-4, full=False)
    # without scaling the logits differ (the test above is not vacuous)
    ref0 = ar.logits(c0, dec, LONG)[-1]
    ref1 = ar.logits(c, dec, LONG)[-1]
    check("arch-2.llama3-matters", np.abs(ref0 - ref1).max() >
          1e-3 * (ref1.max() - ref1.min()))
    cl = ar.make_config("qwen2", rope_scaling={"type": "linear",
                                               "factor": 4.0})
    w = ar.make_weights(cl, 8)
    path = os.path.join(tmp, "lin.gguf")
    dec = ar.write_gguf(path, cl, w, extra_kv={
        "qwen2.rope.scaling.type": "linear",
        "qwen2.rope.scaling.factor": 4.0})
    compare("arch-2.linear", path, cl, dec, LONG, 1e-4, full=False)


def window_cases(tmp):
    for arch, seed in (("mistral", 21), ("gemma2", 22), ("gemma3", 23)):
        c = ar.make_config(arch)
        w = ar.make_weights(c, seed)
        path = os.path.join(tmp, "win_%s.gguf" % arch)
        dec = ar.write_gguf(path, c, w)
        compare("arch-3.window.%s" % arch, path, c, dec, LONG, 1e-4)
        # the window must change the answer for the test to mean anything
        full = ar.logits(dict(c, window=0), dec, LONG)[-1]
        ref = ar.logits(c, dec, LONG)[-1]
        check("arch-3.window-matters.%s" % arch,
              np.abs(full - ref).max() > 1e-3 * (ref.max() - ref.min()))
    c = ar.make_config("gemma2")
    w = ar.make_weights(c, 22)
    dec = ar.write_gguf(os.path.join(tmp, "cap.gguf"), c, w)
    r0 = ar.logits(dict(c, attn_cap=0.0, final_cap=0.0), dec, TOKENS)[-1]
    r1 = ar.logits(c, dec, TOKENS)[-1]
    check("arch-3.softcap-matters", np.abs(r0 - r1).max() >
          1e-2 * (r1.max() - r1.min()) and np.abs(r1).max() < 10.0)


def hf_cases(tmp):
    toks = [t % 256 for t in TOKENS]
    l3 = {"type": "llama3", "factor": 8.0, "low": 1.0, "high": 4.0,
          "orig": 64}
    for i, arch in enumerate(["llama", "qwen2", "qwen3", "gemma2", "gemma3",
                              "phi3", "mistral", "llama3"]):
        if arch == "llama3":
            c = ar.make_config("llama", V=288, rope_scaling=l3)
        else:
            c = ar.make_config(arch, V=288)
        w = ar.make_weights(c, 300 + i)
        folder = os.path.join(tmp, "hf_" + arch)
        dec = ar.write_hf(folder, c, w)
        compare("arch-4.%s" % arch, folder, c, dec,
                LONG if arch in ("mistral", "llama3") else toks, TOL["BF16"],
                full=(arch in ("qwen2", "gemma3")))
        if arch in ("llama", "qwen2"):
            compare("arch-4.%s.quantize-q8_0" % arch, folder, c, dec, toks,
                    TOL["q8_0"], "--quantize", "q8_0", full=False)


def same_greedy(tmp):
    c = ar.make_config("llama", V=300)
    w = ar.make_weights(c, 5)
    g = os.path.join(tmp, "same.gguf")
    ar.write_gguf(g, c, w)
    h = os.path.join(tmp, "same_hf")
    ar.write_hf(h, c, w, dtype="F32")
    prompt = [5, 9, 13, 200, 31]
    a = dump(g, prompt, "--greedy", "12").split()
    b = dump(h, prompt, "--greedy", "12").split()
    check("arch-5 gguf == hf greedy", a == b and len(a) == 12,
          "%s vs %s" % (a, b))


def load_error(model):
    p = subprocess.run([DUMP, model, "1", "2"], capture_output=True,
                       text=True)
    return p.returncode, p.stderr.strip()


def bad_cases(tmp):
    c = ar.make_config("qwen3")
    w = ar.make_weights(c, 9)
    path = os.path.join(tmp, "badshape.gguf")
    ar.write_gguf(path, c, w, override={
        "blk.1.attn_k_norm.weight": np.ones(c["hd"] + 2)})
    rc, err = load_error(path)
    check("arch-6.1 gguf shape vs metadata", rc == 1 and
          "blk.1.attn_k_norm.weight" in err and "shape" in err, err)
    c = ar.make_config("gemma2")
    w = ar.make_weights(c, 9)
    path = os.path.join(tmp, "badqkv.gguf")
    ar.write_gguf(path, c, w, override={
        "blk.0.attn_q.weight": np.ones((64, c["E"]))})
    rc, err = load_error(path)
    check("arch-6.2 gguf q rows vs key_length", rc == 1 and
          "blk.0.attn_q.weight" in err, err)

    def past_end(hdr):
        hdr["model.layers.0.mlp.up_proj.weight"]["data_offsets"][1] += 4096

    c = ar.make_config("llama", V=288)
    w = ar.make_weights(c, 9)
    folder = os.path.join(tmp, "hf_bad")
    ar.write_hf(folder, c, w, header_hook=past_end)
    rc, err = load_error(folder)
    check("arch-6.3 safetensors offsets", rc == 1 and
          "up_proj" in err, err)
    folder = os.path.join(tmp, "hf_missing")
    w2 = dict(w)
    del w2["model.layers.1.self_attn.k_proj.weight"]
    ar.write_hf(folder, c, w2)
    rc, err = load_error(folder)
    check("arch-6.4 hf missing tensor", rc == 1 and
          "model.layers.1.self_attn.k_proj.weight" in err, err)


def cli_cases(tmp):
    hp = os.environ.get("HOTPATH_BIN")
    if not hp or not os.access(hp, os.X_OK):
        print("skipped arch-7: HOTPATH_BIN not set")
        return
    c = ar.make_config("qwen2", V=288)
    w = ar.make_weights(c, 77)
    folder = os.path.join(tmp, "hf_cli")
    ar.write_hf(folder, c, w)
    for q in ([], ["--quantize", "q8_0"]):
        p = subprocess.run([hp, "run", "-m", folder, "-p", "hello", "-n", "6",
                            "--temp", "0", "--ignore-eos", *q],
                           capture_output=True)
        check("arch-7.run%s" % ("." + q[1] if q else ""),
              p.returncode == 0 and len(p.stdout) > 0,
              p.stderr.decode("utf-8", "replace").strip()[-200:])
    p = subprocess.run([hp, "run", "-m", folder, "-p", "hi", "--quantize",
                        "q3"], capture_output=True)
    check("arch-7.bad-quantize", p.returncode == 2)


def main():
    if not os.access(DUMP, os.X_OK):
        print("FAIL: %s not built (HOTPATH_TOOLS=%s)" % (DUMP, TOOLS))
        return 1
    tmp = tempfile.mkdtemp(prefix="hp_arch_")
    try:
        gguf_cases(tmp)
        rope_cases(tmp)
        window_cases(tmp)
        hf_cases(tmp)
        same_greedy(tmp)
        bad_cases(tmp)
        cli_cases(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d failure(s): %s" % (len(failures), ", ".join(failures)))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
