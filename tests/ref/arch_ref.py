"""arch_ref.py: random small models of every architecture hotpath binds,
written both as GGUF (llama.cpp's tensor names and "<arch>.*" keys) and as
a Hugging Face folder (config.json, model.safetensors, tokenizer.json),
plus an independent float64 NumPy forward pass in Hugging Face semantics.

Written from the architectures' public definitions (transformers' modeling
code, model cards, llama.cpp's GGUF key and tensor names), not from the C
code:

    x = embed(tok)  (* sqrt(E) for gemma)
    per layer:  h = rmsnorm(x) * n(attn_norm)       n(w) = 1 + w for gemma
                q, k, v = h Wq (+bq), h Wk (+bk), h Wv (+bv)
                q, k = rmsnorm_per_head(q) * n(q_norm), ...   (qwen3, gemma3)
                q, k = rope_halves(q), rope_halves(k)  (HF rotate_half)
                s = q k^T * scale; s = c tanh(s / c) (gemma2); causal and
                    sliding-window mask (pos - p < window); softmax
                o = (s v) Wo;  o = rmsnorm(o) * n(post_attn)  (gemma)
                x += o
                h = rmsnorm(x) * n(ffn_norm)
                f = (act(h Wg) * (h Wu)) Wd;  f = rmsnorm(f) * n(post_ffn)
                x += f
    logits = (rmsnorm(x) * n(out_norm)) Wout;  c tanh(l / c) (final cap)

GGUF files differ from the HF folder only as llama.cpp's converter makes
them differ: llama/mistral q/k rows are permuted into adjacent-pair RoPE
order, gemma norms are stored as 1 + w, phi3 keeps its fused matrices.
Matrices may be stored as Q8_0; the reference then uses exactly the
dequantized values (quantized here, in NumPy).
"""
import json
import math
import os
import struct

import numpy as np

GEMMA = ("gemma2", "gemma3")


def make_config(arch, **over):
    """Hyperparameters of a tiny model of arch (keys documented inline)."""
    c = dict(arch=arch, E=64, L=2, H=4, Hkv=2, hd=16, F=96, V=320, ctx=256,
             eps=1e-5, base=10000.0, rope_dim=None, rope_scaling=None,
             window=0, swa_layers=None, base_swa=None, attn_cap=0.0,
             final_cap=0.0, qpas=None, tied=False, bias=False,
             qk_norm=False)
    if arch == "qwen2":
        c.update(bias=True, base=1e6)
    if arch == "qwen3":
        c.update(qk_norm=True, hd=24)  # head_dim != E / H
    if arch == "gemma2":
        c.update(hd=32, window=5, attn_cap=3.0, final_cap=10.0, tied=True,
                 eps=1e-6)
    if arch == "gemma3":
        c.update(L=6, hd=32, window=5, qk_norm=True, tied=True, eps=1e-6,
                 base=1e6, base_swa=10000.0)
    if arch == "mistral":
        c.update(window=6)
    c.update(over)
    if c["rope_dim"] is None:
        c["rope_dim"] = c["hd"]
    if c["swa_layers"] is None:
        L = c["L"]
        if arch == "gemma2":
            c["swa_layers"] = [l % 2 == 0 for l in range(L)]
        elif arch == "gemma3":
            c["swa_layers"] = [l % 6 < 5 for l in range(L)]
        else:
            c["swa_layers"] = [True] * L
    if c["qpas"] is None:
        c["qpas"] = c["hd"]
    return c


def make_weights(c, seed):
    """HF-named float64 tensors (torch Linear layout [out, in])."""
    rng = np.random.default_rng(seed)
    E, F, V, hd = c["E"], c["F"], c["V"], c["hd"]
    Q, KV = c["H"] * hd, c["Hkv"] * hd
    gemma = c["arch"] in GEMMA

    def mat(o, i, s=1.0):
        return rng.standard_normal((o, i)) * (s * 0.5 / math.sqrt(i))

    def norm(n):  # effective weight near 1 either way
        return rng.standard_normal(n) * 0.1 + (0.0 if gemma else 1.0)

    w = {"model.embed_tokens.weight": rng.standard_normal((V, E)),
         "model.norm.weight": norm(E)}
    if not c["tied"]:
        w["lm_head.weight"] = mat(V, E, 2.0)
    for l in range(c["L"]):
        p = "model.layers.%d." % l
        w[p + "input_layernorm.weight"] = norm(E)
        if c["arch"] == "phi3":
            w[p + "self_attn.qkv_proj.weight"] = mat(Q + 2 * KV, E, 2.0)
            w[p + "mlp.gate_up_proj.weight"] = mat(2 * F, E, 2.0)
        else:
            w[p + "self_attn.q_proj.weight"] = mat(Q, E, 2.0)
            w[p + "self_attn.k_proj.weight"] = mat(KV, E, 2.0)
            w[p + "self_attn.v_proj.weight"] = mat(KV, E, 2.0)
            w[p + "mlp.gate_proj.weight"] = mat(F, E, 2.0)
            w[p + "mlp.up_proj.weight"] = mat(F, E, 2.0)
        if c["bias"]:
            for s, n in (("q", Q), ("k", KV), ("v", KV)):
                w[p + "self_attn.%s_proj.bias" % s] = rng.standard_normal(n) * 0.3
        if c["qk_norm"]:
            w[p + "self_attn.q_norm.weight"] = norm(hd)
            w[p + "self_attn.k_norm.weight"] = norm(hd)
        w[p + "self_attn.o_proj.weight"] = mat(E, Q)
        w[p + "post_attention_layernorm.weight"] = norm(E)
        if gemma:
            w[p + "pre_feedforward_layernorm.weight"] = norm(E)
            w[p + "post_feedforward_layernorm.weight"] = norm(E)
        w[p + "mlp.down_proj.weight"] = mat(E, F)
    return w


# ------------------------------------------------------------ reference

def _rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def inv_freq(c, local=False):
    """RoPE frequencies of pair i: base^(-2i/d), scaled (full layers)."""
    d = c["rope_dim"]
    i = np.arange(d // 2, dtype=np.float64)
    if local:
        return c["base_swa"] ** (-2.0 * i / d)
    f = c["base"] ** (-2.0 * i / d)
    rs = c["rope_scaling"]
    if rs is None:
        return f
    if rs["type"] == "linear":
        return f / rs["factor"]
    # llama3 bands, as the Llama 3.1 release defines them
    fac, lo, hi, orig = rs["factor"], rs["low"], rs["high"], rs["orig"]
    out = []
    for fi in f:
        wl = 2 * math.pi / fi
        if wl < orig / hi:
            out.append(fi)
        elif wl > orig / lo:
            out.append(fi / fac)
        else:
            s = (orig / wl - lo) / (hi - lo)
            out.append((1 - s) * fi / fac + s * fi)
    return np.array(out)


def _rope_halves(x, pos, freq, d):
    """x (T, heads, hd): HF rotate_half over the first d dims."""
    x = x.copy()
    ang = pos[:, None] * freq[None, :]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[:, :, :d // 2].copy(), x[:, :, d // 2:d].copy()
    x[:, :, :d // 2] = a * c - b * s
    x[:, :, d // 2:d] = a * s + b * c
    return x


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) *
                                  (x + 0.044715 * x ** 3)))


def logits(c, w, tokens):
    """Logits (T, V) of every position of one sequence."""
    gemma = c["arch"] in GEMMA
    E, H, Hkv, hd, eps = c["E"], c["H"], c["Hkv"], c["hd"], c["eps"]
    Q, KV, F = H * hd, Hkv * hd, c["F"]

    def n(name):
        return w[name] + 1.0 if gemma else w[name]

    T = len(tokens)
    x = w["model.embed_tokens.weight"][np.asarray(tokens)]
    if gemma:
        x = x * math.sqrt(E)
    pos = np.arange(T, dtype=np.float64)
    dist = pos[:, None] - pos[None, :]
    for l in range(c["L"]):
        p = "model.layers.%d." % l
        h = _rms(x, n(p + "input_layernorm.weight"), eps)
        if c["arch"] == "phi3":
            qkv = h @ w[p + "self_attn.qkv_proj.weight"].T
            q, k, v = qkv[:, :Q], qkv[:, Q:Q + KV], qkv[:, Q + KV:]
        else:
            q = h @ w[p + "self_attn.q_proj.weight"].T
            k = h @ w[p + "self_attn.k_proj.weight"].T
            v = h @ w[p + "self_attn.v_proj.weight"].T
        if c["bias"]:
            q = q + w[p + "self_attn.q_proj.bias"]
            k = k + w[p + "self_attn.k_proj.bias"]
            v = v + w[p + "self_attn.v_proj.bias"]
        q, k, v = q.reshape(T, H, hd), k.reshape(T, Hkv, hd), v.reshape(T, Hkv, hd)
        if c["qk_norm"]:
            q = _rms(q, n(p + "self_attn.q_norm.weight"), eps)
            k = _rms(k, n(p + "self_attn.k_norm.weight"), eps)
        sliding = c["window"] > 0 and c["swa_layers"][l]
        local = sliding and c["base_swa"] is not None
        fr = inv_freq(c, local)
        q = _rope_halves(q, pos, fr, c["rope_dim"])
        k = _rope_halves(k, pos, fr, c["rope_dim"])
        rep = H // Hkv
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        s = np.einsum("thd,shd->hts", q, k) / math.sqrt(c["qpas"])
        if c["attn_cap"]:
            s = c["attn_cap"] * np.tanh(s / c["attn_cap"])
        allowed = dist >= 0
        if sliding:
            allowed &= dist < c["window"]
        s = np.where(allowed[None], s, -np.inf)
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        o = np.einsum("hts,shd->thd", s, v).reshape(T, Q)
        o = o @ w[p + "self_attn.o_proj.weight"].T
        if gemma:
            o = _rms(o, n(p + "post_attention_layernorm.weight"), eps)
            x = x + o
            h = _rms(x, n(p + "pre_feedforward_layernorm.weight"), eps)
        else:
            x = x + o
            h = _rms(x, n(p + "post_attention_layernorm.weight"), eps)
        if c["arch"] == "phi3":
            gu = h @ w[p + "mlp.gate_up_proj.weight"].T
            g, u = gu[:, :F], gu[:, F:]
        else:
            g = h @ w[p + "mlp.gate_proj.weight"].T
            u = h @ w[p + "mlp.up_proj.weight"].T
        a = _gelu_tanh(g) if gemma else g / (1 + np.exp(-g))
        f = (a * u) @ w[p + "mlp.down_proj.weight"].T
        if gemma:
            f = _rms(f, n(p + "post_feedforward_layernorm.weight"), eps)
        x = x + f
    out = w["model.embed_tokens.weight"] if c["tied"] else w["lm_head.weight"]
    y = _rms(x, n("model.norm.weight"), eps) @ out.T
    if c["final_cap"]:
        y = c["final_cap"] * np.tanh(y / c["final_cap"])
    return y


# ----------------------------------------------------------- quantizing

def q8_0(x):
    """Q8_0 bytes of a 2-D array (rows of a multiple of 32) and the exact
    values they decode to."""
    b = x.reshape(-1, 32).astype(np.float32)
    amax = np.abs(b).max(axis=1)
    d = (amax / 127.0).astype(np.float16)
    dd = d.astype(np.float32)
    idv = np.where(dd > 0, 1.0 / np.where(dd > 0, dd, 1), 0)
    q = np.clip(np.round(b * idv[:, None]), -127, 127).astype(np.int8)
    raw = np.concatenate([d.view(np.uint8).reshape(-1, 2),
                          q.view(np.uint8)], axis=1).tobytes()
    deq = (dd.astype(np.float64)[:, None] * q).reshape(x.shape)
    return raw, deq


def bf16(x):
    """bf16 bytes (round to nearest even) and the values they hold."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    back = (r.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return r.tobytes(), back.reshape(x.shape)


# ----------------------------------------------------------------- GGUF

def _permute(wt, heads):
    """HF rotate-half rows -> adjacent-pair rows (llama.cpp's converter)."""
    o, i = wt.shape
    return (wt.reshape(heads, 2, o // heads // 2, i).swapaxes(1, 2)
            .reshape(o, i))


def gguf_tensors(c, w):
    """GGUF name -> HF-semantics array, in llama.cpp's naming."""
    gemma = c["arch"] in GEMMA
    perm = c["arch"] in ("llama", "mistral")
    g = {"token_embd.weight": w["model.embed_tokens.weight"],
         "output_norm.weight": w["model.norm.weight"]}
    if not c["tied"]:
        g["output.weight"] = w["lm_head.weight"]
    for l in range(c["L"]):
        p, b = "model.layers.%d." % l, "blk.%d." % l
        m = {"input_layernorm.weight": "attn_norm.weight",
             "self_attn.qkv_proj.weight": "attn_qkv.weight",
             "self_attn.q_proj.weight": "attn_q.weight",
             "self_attn.k_proj.weight": "attn_k.weight",
             "self_attn.v_proj.weight": "attn_v.weight",
             "self_attn.q_proj.bias": "attn_q.bias",
             "self_attn.k_proj.bias": "attn_k.bias",
             "self_attn.v_proj.bias": "attn_v.bias",
             "self_attn.q_norm.weight": "attn_q_norm.weight",
             "self_attn.k_norm.weight": "attn_k_norm.weight",
             "self_attn.o_proj.weight": "attn_output.weight",
             "post_attention_layernorm.weight":
                 "post_attention_norm.weight" if gemma else "ffn_norm.weight",
             "pre_feedforward_layernorm.weight": "ffn_norm.weight",
             "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
             "mlp.gate_proj.weight": "ffn_gate.weight",
             "mlp.up_proj.weight": "ffn_up.weight",
             "mlp.gate_up_proj.weight": "ffn_up.weight",
             "mlp.down_proj.weight": "ffn_down.weight"}
        for hf, gg in m.items():
            if p + hf in w:
                g[b + gg] = w[p + hf]
        if perm:
            g[b + "attn_q.weight"] = _permute(g[b + "attn_q.weight"], c["H"])
            g[b + "attn_k.weight"] = _permute(g[b + "attn_k.weight"], c["Hkv"])
    return g


def _gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def _gguf_kv(key, val):
    if isinstance(val, bool):
        return _gguf_str(key) + struct.pack("<IB", 7, val)
    if isinstance(val, int):
        return _gguf_str(key) + struct.pack("<II", 4, val)
    if isinstance(val, float):
        return _gguf_str(key) + struct.pack("<If", 6, val)
    if isinstance(val, str):
        return _gguf_str(key) + struct.pack("<I", 8) + _gguf_str(val)
    et = {str: 8, float: 6, int: 5}[type(val[0])]
    out = _gguf_str(key) + struct.pack("<IIQ", 9, et, len(val))
    for v in val:
        out += _gguf_str(v) if et == 8 else struct.pack(
            "<f" if et == 6 else "<i", v)
    return out


def _spm_vocab(n):
    """A small valid SentencePiece vocabulary of n tokens."""
    toks, scores, types = ["<unk>", "<s>", "</s>"], [0.0] * 3, [2, 3, 3]
    for b in range(256):
        toks.append("<0x%02X>" % b)
        scores.append(0.0)
        types.append(6)
    i = 0
    while len(toks) < n:
        toks.append(("\u2581" if i % 2 == 0 else "") + "t%d" % i)
        scores.append(-0.25 * i)
        types.append(1)
        i += 1
    return toks, scores, types


def write_gguf(path, c, w, qtype="f32", extra_kv=None, extra_tensors=None,
               override=None):
    """Write c/w as GGUF; matrices f32 or q8_0, vectors f32. Returns the HF
    weight dict the file decodes to (for the reference). override maps a
    GGUF tensor name to a replacement array (bad-shape tests)."""
    a = c["arch"]
    gemma = a in GEMMA
    kv = {"general.architecture": a, "general.name": "arch-ref-" + a,
          a + ".context_length": c["ctx"], a + ".embedding_length": c["E"],
          a + ".block_count": c["L"], a + ".feed_forward_length": c["F"],
          a + ".attention.head_count": c["H"],
          a + ".attention.head_count_kv": c["Hkv"],
          a + ".rope.freq_base": float(c["base"]),
          a + ".attention.layer_norm_rms_epsilon": float(c["eps"])}
    if c["hd"] * c["H"] != c["E"]:
        kv[a + ".attention.key_length"] = c["hd"]
        kv[a + ".attention.value_length"] = c["hd"]
    if c["rope_dim"] != c["hd"]:
        kv[a + ".rope.dimension_count"] = c["rope_dim"]
    if c["window"]:
        kv[a + ".attention.sliding_window"] = c["window"]
    if c["attn_cap"]:
        kv[a + ".attn_logit_softcapping"] = float(c["attn_cap"])
    if c["final_cap"]:
        kv[a + ".final_logit_softcapping"] = float(c["final_cap"])
    if c["base_swa"] is not None and a != "gemma3":
        kv[a + ".rope.freq_base_swa"] = float(c["base_swa"])
    toks, scores, types = _spm_vocab(min(c["V"], 300))
    kv.update({"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": toks,
               "tokenizer.ggml.scores": scores,
               "tokenizer.ggml.token_type": types,
               "tokenizer.ggml.bos_token_id": 1,
               "tokenizer.ggml.eos_token_id": 2})
    kv.update(extra_kv or {})
    gt = gguf_tensors(c, w)
    gt.update(extra_tensors or {})
    gt.update(override or {})
    blobs, infos, off = [], [], 0
    dec = {}
    for name, arr in gt.items():
        arr = np.asarray(arr, dtype=np.float64)
        is_norm = arr.ndim == 1
        store = arr + 1.0 if (gemma and is_norm and "norm" in name) else arr
        if arr.ndim == 2 and qtype == "q8_0" and arr.shape[1] % 32 == 0:
            raw, deq = q8_0(store)
            tt = 8
        else:
            raw = store.astype("<f4").tobytes()
            deq = store.astype(np.float32).astype(np.float64)
            tt = 0
        dec[name] = deq - 1.0 if (gemma and is_norm and "norm" in name) else deq
        ne = list(reversed(arr.shape))
        infos.append(_gguf_str(name) + struct.pack("<I", len(ne)) +
                     struct.pack("<%dQ" % len(ne), *ne) +
                     struct.pack("<IQ", tt, off))
        pad = (-len(raw)) % 32
        blobs.append(raw + b"\0" * pad)
        off += len(raw) + pad
    head = b"GGUF" + struct.pack("<IQQ", 3, len(gt), len(kv))
    head += b"".join(_gguf_kv(k, v) for k, v in kv.items())
    head += b"".join(infos)
    head += b"\0" * ((-len(head)) % 32)
    with open(path, "wb") as f:
        f.write(head + b"".join(blobs))
    return _hf_from_gguf(c, w, dec)


def _hf_from_gguf(c, w, dec):
    """The HF dict holding the values the GGUF file decodes to."""
    out = {}
    inv = {}
    for name, arr in gguf_tensors(c, w).items():
        inv[name] = arr
    perm = c["arch"] in ("llama", "mistral")
    # map back by identity of the HF source arrays
    for hfname, arr in w.items():
        for gname, garr in inv.items():
            if garr is arr:
                out[hfname] = dec[gname]
    for l in range(c["L"]):
        b, p = "blk.%d." % l, "model.layers.%d." % l
        if perm:
            for s, heads in (("q", c["H"]), ("k", c["Hkv"])):
                d = dec[b + "attn_%s.weight" % s]
                hd = d.shape[0] // heads
                out[p + "self_attn.%s_proj.weight" % s] = (
                    d.reshape(heads, hd // 2, 2, -1).swapaxes(1, 2)
                    .reshape(d.shape))
    return out


# ---------------------------------------------------------- HF folders

def hf_config(c):
    a = c["arch"]
    mt = {"gemma3": "gemma3_text"}.get(a, a)
    cls = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
           "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
           "gemma2": "Gemma2ForCausalLM", "gemma3": "Gemma3ForCausalLM",
           "phi3": "Phi3ForCausalLM"}[a]
    j = {"architectures": [cls], "model_type": mt, "hidden_size": c["E"],
         "num_hidden_layers": c["L"], "num_attention_heads": c["H"],
         "num_key_value_heads": c["Hkv"], "head_dim": c["hd"],
         "intermediate_size": c["F"], "vocab_size": c["V"],
         "max_position_embeddings": c["ctx"], "rms_norm_eps": c["eps"],
         "rope_theta": c["base"], "tie_word_embeddings": c["tied"],
         "torch_dtype": "bfloat16", "bos_token_id": 256,
         "eos_token_id": 257,
         "hidden_act": "gelu_pytorch_tanh" if a in GEMMA else "silu",
         "sliding_window": c["window"] or None,
         "partial_rotary_factor": c["rope_dim"] / c["hd"]}
    if a in ("qwen2", "qwen3"):
        j["use_sliding_window"] = bool(c["window"])
    if a in GEMMA:
        j["query_pre_attn_scalar"] = c["qpas"]
        j["attn_logit_softcapping"] = c["attn_cap"] or None
        j["final_logit_softcapping"] = c["final_cap"] or None
        j["layer_types"] = ["sliding_attention" if s else "full_attention"
                            for s in c["swa_layers"]]
    if a == "gemma3":
        j["rope_local_base_freq"] = c["base_swa"]
    rs = c["rope_scaling"]
    if rs and rs["type"] == "llama3":
        j["rope_scaling"] = {"rope_type": "llama3", "factor": rs["factor"],
                             "low_freq_factor": rs["low"],
                             "high_freq_factor": rs["high"],
                             "original_max_position_embeddings": rs["orig"]}
    elif rs:
        j["rope_scaling"] = {"rope_type": "linear", "factor": rs["factor"]}
    return j


def _bytes_to_unicode():
    """GPT-2's byte -> printable character table (byte-level BPE)."""
    bs = (list(range(ord("!"), ord("~") + 1)) +
          list(range(ord("\xa1"), ord("\xac") + 1)) +
          list(range(ord("\xae"), ord("\xff") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def tokenizer_json():
    """A minimal byte-level BPE tokenizer.json: 256 byte tokens, two
    special tokens (ids 256, 257), no merges."""
    b2u = _bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [
                {"id": 256, "content": "<|bos|>", "single_word": False,
                 "lstrip": False, "rstrip": False, "normalized": False,
                 "special": True},
                {"id": 257, "content": "<|eos|>", "single_word": False,
                 "lstrip": False, "rstrip": False, "normalized": False,
                 "special": True}],
            "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                              "trim_offsets": True, "use_regex": True},
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True,
                        "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None,
                      "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False,
                      "byte_fallback": False, "vocab": vocab, "merges": []}}


def write_safetensors(path, tensors, header_hook=None):
    """tensors: name -> (dtype name, shape, raw bytes)."""
    hdr, off, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name, (dt, shape, raw) in tensors.items():
        hdr[name] = {"dtype": dt, "shape": list(shape),
                     "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if header_hook:
        header_hook(hdr)
    h = json.dumps(hdr).encode()
    h += b" " * ((-len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def write_hf(folder, c, w, dtype="BF16", header_hook=None):
    """Write an HF folder; returns the weight dict it decodes to."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(hf_config(c), f)
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(), f)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|bos|>", "eos_token": "<|eos|>",
                   "add_bos_token": True,
                   "chat_template": "{% for m in messages %}{{ m.content }}"
                                    "{% endfor %}"}, f)
    ts, dec = {}, {}
    for name, arr in w.items():
        if dtype == "BF16":
            raw, back = bf16(arr)
        else:
            back = arr.astype(np.float32).astype(np.float64)
            raw = arr.astype("<f4").tobytes()
        ts[name] = (dtype, arr.shape, raw)
        dec[name] = back
    write_safetensors(os.path.join(folder, "model.safetensors"), ts,
                      header_hook)
    return dec
