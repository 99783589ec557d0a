"""llama_ref.py: an independent NumPy reference for hotpath's forward pass.

A minimal GGUF reader (metadata and tensors; F32, F16, BF16, Q8_0 and Q4_0
dequantized exactly) and a float64 llama forward pass written from the
architecture's definition, not from the C code:

    x = embed(tok)
    per layer:  h = rmsnorm(x) * attn_norm
                q, k, v = h Wq, h Wk, h Wv; rope(q), rope(k)
                x += softmax(q k^T / sqrt(hd) + causal) v  Wo   (GQA)
                h = rmsnorm(x) * ffn_norm
                x += (silu(h Wgate) * (h Wup)) Wdown
    logits = (rmsnorm(x) * out_norm) Wout

RoPE is GGUF/ggml "normal" mode: adjacent pairs (2i, 2i+1) of each head are
rotated by pos * base^(-2i/rope_dim), dims past rope_dim untouched.

Usage as a script: llama_ref.py MODEL.gguf TOKENS... prints the last
token's logits, one per line.
"""
import struct
import sys

import numpy as np

# GGUF value types -> struct format (scalars)
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f",
           7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
# tensor type -> (block elements, block bytes)
_BLOCK = {0: (1, 4), 1: (1, 2), 30: (1, 2), 8: (32, 34), 2: (32, 18),
          3: (32, 20), 6: (32, 22), 7: (32, 24),
          12: (256, 144), 13: (256, 176), 14: (256, 210)}


class GGUF:
    """Parsed GGUF file: .kv (dict key -> python value), .tensors (dict
    name -> (type, shape ne[], bytes))."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = f.read()
        self.pos = 0
        magic, version = struct.unpack_from("<4sI", self.buf, 0)
        if magic != b"GGUF" or version not in (2, 3):
            raise ValueError("not a GGUF v2/v3 file")
        n_tensors, n_kv = struct.unpack_from("<QQ", self.buf, 8)
        self.pos = 24
        self.kv = {}
        for _ in range(n_kv):
            key = self._str()
            (t,) = self._unpack("<I")
            self.kv[key] = self._value(t)
        infos = []
        for _ in range(n_tensors):
            name = self._str()
            (nd,) = self._unpack("<I")
            ne = list(self._unpack("<%dQ" % nd))
            ttype, off = self._unpack("<IQ")
            infos.append((name, ne, ttype, off))
        align = int(self.kv.get("general.alignment", 32))
        base = (self.pos + align - 1) // align * align
        self.tensors = {}
        for name, ne, ttype, off in infos:
            be, bb = _BLOCK[ttype]
            n = int(np.prod(ne))
            nbytes = n // be * bb
            start = base + off
            self.tensors[name] = (ttype, ne, self.buf[start:start + nbytes])

    def _unpack(self, fmt):
        v = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def _str(self):
        (n,) = self._unpack("<Q")
        s = self.buf[self.pos:self.pos + n]
        self.pos += n
        return s.decode("utf-8", errors="replace")

    def _value(self, t):
        if t in _SCALAR:
            return self._unpack(_SCALAR[t])[0]
        if t == 8:
            return self._str()
        if t == 9:
            et, n = self._unpack("<IQ")
            return [self._value(et) for _ in range(n)]
        raise ValueError("bad value type %d" % t)

    def tensor(self, name):
        """The tensor as float64 of shape (ne[n-1], ..., ne[0])."""
        ttype, ne, raw = self.tensors[name]
        return dequant(ttype, raw).reshape(list(reversed(ne)))


def dequant(ttype, raw):
    """Exact dequantization of a tensor's bytes to float64."""
    if ttype == 0:
        return np.frombuffer(raw, dtype="<f4").astype(np.float64)
    if ttype == 1:
        return np.frombuffer(raw, dtype="<f2").astype(np.float64)
    if ttype == 30:
        u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return u.view(np.float32).astype(np.float64)
    if ttype == 8:  # Q8_0: f16 d, 32 x int8; w = d * q
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 34)
        d = b[:, :2].copy().view("<f2").astype(np.float64)
        q = b[:, 2:].view(np.int8).astype(np.float64)
        return (d * q).reshape(-1)
    if ttype == 2:  # Q4_0: f16 d, 16 bytes; low nibbles 0..15, high 16..31
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)
        d = b[:, :2].copy().view("<f2").astype(np.float64)
        qs = b[:, 2:]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float64)
        return (d * (q - 8.0)).reshape(-1)
    if ttype in (3, 6, 7, 12, 13, 14):
        return _dequant_more(ttype, raw)
    raise ValueError("unsupported tensor type %d" % ttype)


def _f16(b, off):
    """Column of f16 values at byte offset off of each block row."""
    return b[:, off:off + 2].copy().view("<f2").astype(np.float64)


def _nibbles(qs):
    """Q4_0-style 16 bytes -> 32 values: low nibbles, then high nibbles."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int64)


def _qh_bits(b, off):
    """Q5_0/Q5_1: bit j of the little-endian u32 at off is bit 4 of
    element j."""
    qh = b[:, off:off + 4].copy().view("<u4").astype(np.int64)
    return (qh >> np.arange(32)) & 1


def _dequant_more(ttype, raw):
    """Q4_1, Q5_0, Q5_1 (32-element blocks) and Q4_K, Q5_K, Q6_K
    (256-element super-blocks), written from the GGUF layouts (see
    src/kernels/kern_k.h) independently of the C code."""
    be, bb = _BLOCK[ttype]
    b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, bb)
    n = b.shape[0]
    if ttype == 3:  # Q4_1: d, m, 16 nibble bytes; w = d * q + m
        return (_f16(b, 0) * _nibbles(b[:, 4:]) + _f16(b, 2)).reshape(-1)
    if ttype == 6:  # Q5_0: d, qh u32, 16 bytes; w = d * (q - 16)
        q = _nibbles(b[:, 6:]) | (_qh_bits(b, 2) << 4)
        return (_f16(b, 0) * (q - 16)).reshape(-1)
    if ttype == 7:  # Q5_1: d, m, qh u32, 16 bytes; w = d * q + m
        q = _nibbles(b[:, 8:]) | (_qh_bits(b, 4) << 4)
        return (_f16(b, 0) * q + _f16(b, 2)).reshape(-1)
    if ttype in (12, 13):  # Q4_K / Q5_K
        d, dmin = _f16(b, 0), _f16(b, 2)
        s = b[:, 4:16].astype(np.int64)
        sc = np.concatenate([s[:, 0:4] & 63,
                             (s[:, 8:12] & 15) | ((s[:, 0:4] >> 6) << 4)], 1)
        mn = np.concatenate([s[:, 4:8] & 63,
                             (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)], 1)
        qoff = 16 if ttype == 12 else 48
        qs = b[:, qoff:qoff + 128].astype(np.int64).reshape(n, 4, 1, 32)
        # sub-block 2c: low nibbles of bytes 32c..32c+31; 2c+1: high
        q = np.concatenate([qs & 15, qs >> 4], axis=2).reshape(n, 8, 32)
        if ttype == 13:  # bit k of qh[l]: bit 4 of element l of sub-block k
            qh = b[:, 16:48].astype(np.int64)
            q = q + 16 * ((qh[:, None, :] >> np.arange(8)[None, :, None]) & 1)
        w = (d[:, :, None] * sc[:, :, None] * q -
             dmin[:, :, None] * mn[:, :, None])
        return w.reshape(-1)
    # Q6_K: ql[128], qh[64], int8 scales[16], d; element 128h + 32t + l
    ql = b[:, 0:128].astype(np.int64).reshape(n, 2, 2, 32)  # h, t&1, l
    qh = b[:, 128:192].astype(np.int64).reshape(n, 2, 32)   # h, l
    sc = b[:, 192:208].copy().view(np.int8).astype(np.int64)
    d = _f16(b, 208)
    parts = []
    for t in range(4):
        low = (ql[:, :, t & 1, :] >> (4 * (t >> 1))) & 15
        parts.append(low | (((qh >> (2 * t)) & 3) << 4))
    q = np.stack(parts, axis=2).reshape(n, 256)
    return (d * np.repeat(sc, 16, axis=1) * (q - 32)).reshape(-1)


def _rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def _rope(x, pos, rope_dim, base):
    """x: (T, n_heads, head_dim); rotate adjacent pairs below rope_dim."""
    x = x.copy()
    i = np.arange(rope_dim // 2, dtype=np.float64)
    ang = pos[:, None] * base ** (-2.0 * i / rope_dim)  # (T, R)
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a = x[:, :, 0:rope_dim:2].copy()
    b = x[:, :, 1:rope_dim:2].copy()
    x[:, :, 0:rope_dim:2] = a * c - b * s
    x[:, :, 1:rope_dim:2] = a * s + b * c
    return x


class Llama:
    def __init__(self, path):
        g = GGUF(path)
        kv = g.kv
        assert kv["general.architecture"] == "llama"
        self.E = int(kv["llama.embedding_length"])
        self.L = int(kv["llama.block_count"])
        self.H = int(kv["llama.attention.head_count"])
        self.Hkv = int(kv.get("llama.attention.head_count_kv", self.H))
        self.hd = self.E // self.H
        self.rope_dim = int(kv.get("llama.rope.dimension_count", self.hd))
        self.base = float(kv.get("llama.rope.freq_base", 10000.0))
        self.eps = float(kv["llama.attention.layer_norm_rms_epsilon"])
        self.embd = g.tensor("token_embd.weight")  # (V, E)
        self.out_norm = g.tensor("output_norm.weight")
        if "output.weight" in g.tensors:
            self.out = g.tensor("output.weight")  # (V, E)
        else:
            self.out = self.embd
        self.layers = []
        for l in range(self.L):
            t = lambda s: g.tensor("blk.%d.%s.weight" % (l, s))
            self.layers.append({s: t(s) for s in (
                "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")})

    def logits(self, tokens):
        """Logits (T, V) of every position for one sequence."""
        T = len(tokens)
        H, Hkv, hd = self.H, self.Hkv, self.hd
        x = self.embd[np.asarray(tokens)]  # (T, E)
        pos = np.arange(T, dtype=np.float64)
        mask = np.triu(np.full((T, T), -np.inf), k=1)
        for ly in self.layers:
            h = _rmsnorm(x, ly["attn_norm"], self.eps)
            q = (h @ ly["attn_q"].T).reshape(T, H, hd)
            k = (h @ ly["attn_k"].T).reshape(T, Hkv, hd)
            v = (h @ ly["attn_v"].T).reshape(T, Hkv, hd)
            q = _rope(q, pos, self.rope_dim, self.base)
            k = _rope(k, pos, self.rope_dim, self.base)
            rep = H // Hkv  # query head h uses kv head h // rep
            k = np.repeat(k, rep, axis=1)
            v = np.repeat(v, rep, axis=1)
            att = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd) + mask
            att = np.exp(att - att.max(axis=-1, keepdims=True))
            att /= att.sum(axis=-1, keepdims=True)
            o = np.einsum("hts,shd->thd", att, v).reshape(T, H * hd)
            x = x + o @ ly["attn_output"].T
            h = _rmsnorm(x, ly["ffn_norm"], self.eps)
            gte = h @ ly["ffn_gate"].T
            up = h @ ly["ffn_up"].T
            x = x + (gte / (1.0 + np.exp(-gte)) * up) @ ly["ffn_down"].T
        return _rmsnorm(x, self.out_norm, self.eps) @ self.out.T


def main(argv):
    m = Llama(argv[1])
    toks = [int(t) for t in argv[2:]]
    for v in m.logits(toks)[-1]:
        print("%.9g" % v)


if __name__ == "__main__":
    main(sys.argv)
