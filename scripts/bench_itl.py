#!/usr/bin/env python3
"""bench_itl.py URL MODEL [LONG_PROMPT_WORDS]: inter-token latency of a
running stream while a long prompt arrives (chunked prefill check).

Stream A generates 256 tokens; 1 s in, request B sends a prompt of
LONG_PROMPT_WORDS words (default 2000, one token each on real and synth
vocabularies). Prints A's inter-token gaps (p50, p99, max) before and while
B's prompt is prefilled, and B's time to first token. Loopback only.
"""
import http.client
import json
import random
import sys
import threading
import time
from urllib.parse import urlparse

WORDS = ("the of and to in is that for it as was with be by on not he this are or "
         "his from at which but have an had they you were their one all we can her").split()


def stream_gaps(host, port, model, out):
    c = http.client.HTTPConnection(host, port, timeout=600)
    body = {"model": model, "prompt": "Once upon a time", "max_tokens": 256,
            "temperature": 0, "stream": True, "ignore_eos": True}
    c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    buf = b""
    while True:
        chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            if ev.startswith(b"data: ") and ev != b"data: [DONE]":
                out.append(time.time())


def long_prompt(host, port, model, n, res):
    rnd = random.Random(7)
    prompt = " " + " ".join(rnd.choice(WORDS) for _ in range(n))
    c = http.client.HTTPConnection(host, port, timeout=600)
    body = {"model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0, "stream": True}
    t0 = time.time()
    c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    first = None
    while True:
        chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
        if not chunk:
            break
        if first is None and b"data: {" in chunk:
            first = time.time()
    res["t0"], res["ttft"], res["end"] = t0, (first or time.time()) - t0, time.time()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))] if xs else float("nan")


def main():
    u = urlparse(sys.argv[1])
    model = sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    ts, res = [], {}
    a = threading.Thread(target=stream_gaps, args=(u.hostname, u.port, model, ts))
    a.start()
    time.sleep(1.0)
    b = threading.Thread(target=long_prompt, args=(u.hostname, u.port, model, n, res))
    b.start()
    a.join()
    b.join()
    gaps = [(ts[i], ts[i] - ts[i - 1]) for i in range(2, len(ts))]
    before = [g * 1000 for t, g in gaps if t < res["t0"]]
    during = [g * 1000 for t, g in gaps if res["t0"] <= t <= res["end"] + 0.05]
    for name, g in (("before", before), ("during", during)):
        print("A's ITL %-6s the long prompt: n=%3d p50 %7.1f ms  p99 %7.1f ms  max %7.1f ms"
              % (name, len(g), pct(g, 50), pct(g, 99), max(g) if g else float("nan")))
    print("B's TTFT (%d-word prompt): %.0f ms" % (n, res["ttft"] * 1000))


if __name__ == "__main__":
    main()
