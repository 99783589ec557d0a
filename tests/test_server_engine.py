"""test_server_engine.py: serving-engine behaviour seen over HTTP: /metrics
(Prometheus text), disconnect frees the slot at once, queue limits (429 with
Retry-After), prefix-cache hits, and batch independence under --parallel.

Starts its own servers on free loopback ports with the real stories260K
model and always stops them. Skips (exit 0) when the model is absent.
"""
import json
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from test_server_api import MODEL, Server  # noqa: E402


def completion(s, prompt, n, **kw):
    body = {"prompt": prompt, "max_tokens": n, "temperature": 0}
    body.update(kw)
    st, h, data = s.post("/v1/completions", body)
    return st, h, data


def scrape(s):
    st, h, data = s.request("GET", "/metrics")
    assert st == 200, (st, data)
    assert h.get("Content-Type", "").startswith("text/plain"), h
    out = {}
    for line in data.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        name, val = line.rsplit(" ", 1)
        out[name] = float(val)
    return out, data.decode()


def hist(m, name):
    """Buckets (le -> cumulative count), _count and _sum of one histogram."""
    b = {}
    for k, v in m.items():
        mm = re.match(r'%s_bucket\{model="[^"]*",le="([^"]+)"\}' % name, k)
        if mm:
            b[float("inf") if mm.group(1) == "+Inf" else float(mm.group(1))] = v
    cnt = [v for k, v in m.items() if k.startswith(name + "_count")]
    sm = [v for k, v in m.items() if k.startswith(name + "_sum")]
    return b, cnt[0], sm[0]


def metric(m, prefix):
    return sum(v for k, v in m.items() if k.startswith(prefix))


def engine_metrics_spec(s):
    """/metrics has the four histograms (cumulative, +Inf == _count), token
    and request counters that only grow, HTTP status counters, and gauges;
    /health does not change any of it."""
    m0, text = scrape(s)
    for name in ("hotpath_time_to_first_token_seconds",
                 "hotpath_inter_token_latency_seconds",
                 "hotpath_e2e_request_latency_seconds",
                 "hotpath_request_queue_time_seconds"):
        assert "# TYPE %s histogram" % name in text, name
    for want in ("hotpath_prompt_tokens_total", "hotpath_generation_tokens_total",
                 "hotpath_requests_total", "hotpath_http_responses_total",
                 "hotpath_prefix_cache_queries_total", "hotpath_prefix_cache_hits_total",
                 "hotpath_num_requests_running", "hotpath_num_requests_waiting",
                 "hotpath_kv_cache_blocks_used", "hotpath_kv_cache_blocks_total"):
        assert want in text, want
    st, _, _ = completion(s, "Once upon a time", 20)
    assert st == 200
    st, _, data = completion(s, "Once upon a time", 20, stream=True)
    assert st == 200 and data.rstrip().endswith(b"data: [DONE]")
    st, _, _ = s.post("/v1/completions", {"prompt": "x", "max_tokens": -5})
    assert st == 400
    m1, _ = scrape(s)
    for name in ("hotpath_time_to_first_token_seconds", "hotpath_e2e_request_latency_seconds",
                 "hotpath_inter_token_latency_seconds", "hotpath_request_queue_time_seconds"):
        b, cnt, sm = hist(m1, name)
        les = sorted(b)
        assert les[-1] == float("inf")
        assert all(b[les[i]] <= b[les[i + 1]] for i in range(len(les) - 1)), (name, b)
        assert b[float("inf")] == cnt, (name, b, cnt)
        assert sm >= 0
    assert hist(m1, "hotpath_e2e_request_latency_seconds")[1] - \
        hist(m0, "hotpath_e2e_request_latency_seconds")[1] == 2
    assert hist(m1, "hotpath_inter_token_latency_seconds")[1] - \
        hist(m0, "hotpath_inter_token_latency_seconds")[1] == 38  # 19 gaps x 2
    assert metric(m1, "hotpath_generation_tokens_total") - metric(m0, "hotpath_generation_tokens_total") == 40
    assert metric(m1, 'hotpath_requests_total{model="llama",finish_reason="length"}') - \
        metric(m0, 'hotpath_requests_total{model="llama",finish_reason="length"}') == 2
    assert metric(m1, 'hotpath_http_responses_total{model="llama",status="400"}') - \
        metric(m0, 'hotpath_http_responses_total{model="llama",status="400"}') == 1
    assert metric(m1, 'hotpath_http_responses_total{model="llama",status="200"}') - \
        metric(m0, 'hotpath_http_responses_total{model="llama",status="200"}') == 2
    assert metric(m1, "hotpath_kv_cache_blocks_total") > 0
    # counters never decrease between scrapes
    for k, v in m0.items():
        if k.endswith("_total") or "_bucket" in k or k.endswith("_count") or k.endswith("_sum"):
            assert m1.get(k, 0) >= v, k
    # /health is invisible to the counters
    for _ in range(5):
        assert s.request("GET", "/health")[0] == 200
    m2, _ = scrape(s)
    for k, v in m1.items():
        if "num_requests" in k or "kv_cache_blocks_used" in k:
            continue
        assert m2.get(k) == v, (k, v, m2.get(k))


def engine_prefix_cache_hits(s):
    """A repeated long prompt is found in the prefix cache (hits counted)
    and gives the same text."""
    prompt = "Once upon a time, there was a little girl named Lily. " * 6
    m0, _ = scrape(s)
    st, _, a = completion(s, prompt, 10)
    st2, _, b = completion(s, prompt, 10)
    assert st == st2 == 200
    assert json.loads(a)["choices"][0]["text"] == json.loads(b)["choices"][0]["text"]
    m1, _ = scrape(s)
    hits = metric(m1, "hotpath_prefix_cache_hits_total") - metric(m0, "hotpath_prefix_cache_hits_total")
    assert hits >= 64, hits


def stream_then_close(port, n_chunks=1, max_tokens=256):
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    body = json.dumps({"prompt": "Once upon a time", "max_tokens": max_tokens, "temperature": 0,
                       "stream": True, "ignore_eos": True})
    sock.sendall(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  "Content-Length: %d\r\n\r\n%s" % (len(body), body)).encode())
    got = b""
    while got.count(b"data: ") < n_chunks:
        chunk = sock.recv(4096)
        assert chunk, "server closed early"
        got += chunk
    sock.close()


def engine_disconnect_frees_slot(port):
    """With one slot (--parallel 1), a stream closed after its first chunk
    is cancelled (counted as such) and frees the slot: a new request starts
    at once. 256 tokens as the spec says, then 1500 so that the stream
    cannot finish on its own before the close is seen."""
    s = Server.__new__(Server)
    s.port = port
    key = 'hotpath_requests_total{model="llama",finish_reason="cancelled"}'
    for n in (256, 1500, 1500):
        m0, _ = scrape(s)
        stream_then_close(port, max_tokens=n)
        t0 = time.time()
        st, _, data = completion(s, "The cat", 5)
        assert st == 200, data
        assert time.time() - t0 < 2.0, time.time() - t0
        if n == 1500:
            m1, _ = scrape(s)
            assert metric(m1, key) - metric(m0, key) == 1, (metric(m0, key), metric(m1, key))


def engine_queue_full_429(port):
    """With --parallel 1 --max-queue 1, a burst gets some 429s, each with
    Retry-After and OpenAI error JSON, and the rest complete."""
    res = []
    lock = threading.Lock()
    s = Server.__new__(Server)
    s.port = port

    def one():
        st, h, data = completion(s, "Once upon a time", 200, ignore_eos=True)
        with lock:
            res.append((st, h, data))
    ts = [threading.Thread(target=one) for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    codes = sorted(r[0] for r in res)
    assert len(res) == 6
    assert 429 in codes and 200 in codes, codes
    for st, h, data in res:
        if st == 429:
            assert "Retry-After" in h, h
            err = json.loads(data)["error"]
            assert err["type"] and err["message"], err


def main():
    if not os.path.exists(MODEL):
        print("skipped: %s not found" % MODEL)
        return 0
    failures = 0
    groups = [
        ((), [engine_metrics_spec, engine_prefix_cache_hits], True),
        (("--parallel", "1"), [engine_disconnect_frees_slot], False),
        (("--parallel", "1", "--max-queue", "1"), [engine_queue_full_429], False),
    ]
    for extra, cases, pass_server in groups:
        s = Server(*extra)
        try:
            for fn in cases:
                t0 = time.time()
                try:
                    fn(s if pass_server else s.port)
                    print("ok   %s (%.2fs)" % (fn.__name__, time.time() - t0))
                except Exception as e:  # noqa: BLE001
                    failures += 1
                    import traceback
                    traceback.print_exc()
                    print("FAIL %s: %r" % (fn.__name__, e))
                if s.proc.poll() is not None:
                    print("FAIL server died: %s" % s.proc.stderr.read())
                    return 1
        finally:
            s.stop()
    print("%d passed, %d failed" % (sum(len(g[1]) for g in groups) - failures, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
