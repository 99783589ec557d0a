"""test_server_http.py: HTTP framing hardening of `hotpath serve`, and the
smaller API fixes that came with it (stdlib only).

Request heads are checked before the body is read (src/server/http_guard.c):
an oversized Content-Length is answered 413 at once, with or without
`Expect: 100-continue`; an invalid, overflowing or conflicting
Content-Length is 400; a long URL 414 and large headers 431 -- all as
OpenAI error JSON; HEAD replies carry GET's headers and no body. Also:
GET /v1/models/{id}, max_model_len under a small KV
pool, --ctx-size limits, --host validation, distinct logprob token strings
for byte tokens. Servers run on --port 0 on 127.0.0.1 and are always
stopped. Skips (exit 0) when the model is absent. Cases are named
server_http_<behaviour>.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_server_api  # noqa: E402
from test_server_api import BIN, MODEL, Server  # noqa: E402
from test_server_errors import check_error, parse_raw  # noqa: E402

PROMPT_S = 3.0  # "at once": far below any --timeout


def exchange(port, head, body=b"", wait=PROMPT_S + 2):
    """Send head (+body) without closing our side; read until the server
    closes or `wait` passes. Returns (bytes, seconds to the first byte)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=wait)
    t0 = time.time()
    first = None
    out = b""
    try:
        sock.sendall(head + body)
        while time.time() - t0 < wait:
            try:
                chunk = sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            if first is None:
                first = time.time() - t0
            out += chunk
    finally:
        sock.close()
    return out, first


def expect_error(port, head, status, contains=(), body=b""):
    resp, first = exchange(port, head, body)
    assert resp, "no answer to %r" % head[:120]
    assert first is not None and first < PROMPT_S, (head[:120], first)
    st, h, data = parse_raw(resp)
    check_error(st, h, data, status, contains=contains)
    return h


def server_http_oversized_content_length_at_once(small):
    """Content-Length over --max-body (1000), headers only: 413 JSON at
    once (libevent alone waited for the whole body), also with Expect:
    100-continue (no 100 is sent), and the server stays healthy."""
    for extra in (b"", b"Expect: 100-continue\r\n"):
        head = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 5000\r\n"
                + extra + b"\r\n")
        resp, _ = exchange(small.port, head)
        assert b" 100 " not in resp.split(b"\r\n", 1)[0], resp[:100]
        h = expect_error(small.port, head, 413, contains=["5000", "1000"])
        assert h.get("Connection", "").lower() == "close", h
    # the body arriving anyway is drained, not buffered; the answer stands
    head = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 300000\r\n\r\n")
    expect_error(small.port, head, 413, body=b"x" * 300000)
    st, _, _ = small.request("GET", "/health")
    assert st == 200


def server_http_bad_content_length(s):
    """Content-Length that is no non-negative integer, overflows, or
    appears twice with different values (request smuggling): 400 at once.
    Two equal ones are fine."""
    for v in (b"abc", b"-1", b"1.5", b"0x10", b"", b"5, 5",
              b"999999999999999999999", b"18446744073709551616"):
        head = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: " + v + b"\r\n\r\n")
        expect_error(s.port, head, 400, contains=["Content-Length"])
    head = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n")
    expect_error(s.port, head, 400, contains=["Conflicting"], body=b"hello!")
    head = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n")
    expect_error(s.port, head, 400, body=b"0\r\n\r\n")
    head = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: gzip, chunked\r\n\r\n")
    expect_error(s.port, head, 501)
    body = b'{"prompt": "Once", "max_tokens": 1}'
    head = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(body), len(body)))
    resp, _ = exchange(s.port, head, body, wait=30)
    st, _, data = parse_raw(resp)
    assert st == 200, resp[:300]


def server_http_url_and_header_limits(s):
    """A URL over 8 KiB is 414 and headers over 64 KiB are 431, as OpenAI
    error JSON, not libevent's '400 Malformed HTTP request'."""
    head = b"GET /v1/models?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    expect_error(s.port, head, 414, contains=["URL"])
    # a request line that never ends is refused before it does
    expect_error(s.port, b"GET /" + b"a" * 100000, 414)
    head = (b"GET /health HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 1000) for i in range(70))
            + b"\r\n")
    expect_error(s.port, head, 431, contains=["headers"])
    st, _, _ = s.request("GET", "/health")
    assert st == 200


def server_http_keepalive_and_pipelining(s):
    """Checked heads do not disturb keep-alive: a POST with a body, then a
    GET, on one connection; and two pipelined requests in one write."""
    c = s.conn()
    try:
        for _ in range(2):
            c.request("POST", "/v1/completions", body=json.dumps(
                {"prompt": "Once", "max_tokens": 1}),
                headers={"Content-Type": "application/json"})
            r = c.getresponse()
            assert r.status == 200 and "choices" in json.loads(r.read())
            c.request("GET", "/health")
            r = c.getresponse()
            assert r.status == 200 and json.loads(r.read()) == {"status": "ok"}
    finally:
        c.close()
    resp, _ = exchange(s.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                       b"GET /v1/nothing HTTP/1.1\r\nHost: x\r\n"
                       b"Connection: close\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 404" in resp, resp[:400]


def server_http_models_retrieve(s):
    """GET /v1/models/{id} (the SDK's models.retrieve()) is the model
    object for the served id, 404 model_not_found otherwise."""
    st, _, data = s.request("GET", "/v1/models")
    m = json.loads(data)["data"][0]
    for path in ("/v1/models/" + m["id"], "/models/" + m["id"]):
        st, h, data = s.request("GET", path)
        assert st == 200 and json.loads(data) == m, (path, st, data)
    st, h, data = s.request("GET", "/v1/models/gpt-4o")
    check_error(st, h, data, 404, code="model_not_found", contains=["gpt-4o"])
    st, h, data = s.request("POST", "/v1/models/" + m["id"], b"{}")
    check_error(st, h, data, 405)


def split_responses(raw, methods):
    """Split the bytes of pipelined responses, one per request method, by
    their Content-Length (a HEAD reply has none of the body it announces).
    Returns [(status, headers, body)]; asserts nothing is left over."""
    out = []
    for m in methods:
        head, sep, raw = raw.partition(b"\r\n\r\n")
        assert sep, ("truncated", m, head[:200])
        st, h, _ = parse_raw(head + b"\r\n\r\n")
        n = 0 if m == "HEAD" else int(h["Content-Length"])
        out.append((st, h, raw[:n]))
        raw = raw[n:]
    assert raw == b"", ("bytes after the last response", raw[:200])
    return out


def server_http_head_has_no_body(s):
    """HEAD gets GET's status and headers, Content-Length included, and no
    body: a pipelined HEAD then GET on one connection reads as two
    responses, not the HEAD's body glued before the GET's. Errors too."""
    st, _, data = s.request("GET", "/v1/models")
    mid = json.loads(data)["data"][0]["id"]
    for path in ("/health", "/metrics", "/v1/models", "/v1/models/" + mid,
                 "/v1/nothing"):
        req = ("HEAD {0} HTTP/1.1\r\nHost: x\r\n\r\n"
               "GET {0} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
               .format(path)).encode()
        resp, _ = exchange(s.port, req)
        (hst, hh, _), (gst, gh, gbody) = split_responses(resp, ["HEAD", "GET"])
        assert hst == gst and gst in (200, 404), (path, hst, gst)
        assert hh["Content-Type"] == gh["Content-Type"], (path, hh, gh)
        assert int(hh["Content-Length"]) == len(gbody) > 0, (path, hh, gbody)
        if path != "/metrics":  # its counters may move between the two
            assert int(hh["Content-Length"]) == int(gh["Content-Length"]), path


def server_http_max_model_len_follows_kv_pool():
    """With a KV pool smaller than one context (--kv-memory 1), /v1/models'
    max_model_len is what the pool holds, and prompts are measured
    against it."""
    s = Server("--ctx-size", "2048", "--kv-memory", "1")
    try:
        st, _, data = s.request("GET", "/v1/models")
        n = json.loads(data)["data"][0]["max_model_len"]
        assert 16 <= n < 2048 and n % 16 == 0, n
        st, h, data = s.post("/v1/completions", {"prompt": [1] * (n - 4), "max_tokens": 8})
        check_error(st, h, data, 400, code="context_length_exceeded", contains=[str(n)])
        st, _, _ = s.post("/v1/completions", {"prompt": "Once", "max_tokens": 2})
        assert st == 200
    finally:
        complaint = s.stop()
    assert not complaint, complaint[-4000:]


def server_http_cli_checks():
    """--host 999.1.1.1 exits 1 saying the address is invalid (no
    'Success', no libevent lines); --ctx-size under 16 exits 2; one over
    the trained context warns but serves."""
    p = subprocess.run([BIN, "serve", "-m", MODEL, "--port", "0", "--host", "999.1.1.1"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1, p
    assert "999.1.1.1" in p.stderr and "not a valid" in p.stderr, p.stderr
    assert "Success" not in p.stderr and "getaddrinfo" not in p.stderr, p.stderr
    assert "[warn]" not in p.stderr and "[err]" not in p.stderr, p.stderr
    p = subprocess.run([BIN, "serve", "-m", MODEL, "--port", "0", "--ctx-size", "8"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "--ctx-size" in p.stderr and "16" in p.stderr, p
    s = Server("--ctx-size", "100000")
    try:
        st, _, data = s.request("GET", "/v1/models")
        assert st == 200
    finally:
        s.stop()
    assert "warning" in s.stderr_text and "trained context" in s.stderr_text, s.stderr_text


def server_http_byte_token_logprobs():
    """A random-weight model ranks byte tokens high: completions'
    top_logprobs keep one entry per alternative (byte pieces are
    "bytes:\\xNN" keys, never all U+FFFD), and chat's token strings differ
    wherever their bytes differ."""
    with tempfile.TemporaryDirectory() as d:
        model = os.path.join(d, "tiny.gguf")
        r = subprocess.run([BIN, "synth", "--shape", "tiny", "--type", "q8_0",
                            "--seed", "3", "-o", model], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        saved = test_server_api.MODEL
        test_server_api.MODEL = model
        try:
            s = Server()
        finally:
            test_server_api.MODEL = saved
        try:
            st, _, data = s.post("/v1/completions", {"prompt": "Hello", "max_tokens": 24,
                                                     "logprobs": 5, "seed": 1})
            assert st == 200, data
            lp = json.loads(data)["choices"][0]["logprobs"]
            keys = [k for top in lp["top_logprobs"] for k in top]
            assert any(k.startswith("bytes:\\x") for k in keys + lp["tokens"]), lp
            for top in lp["top_logprobs"]:
                assert len(top) == 5, top
            st, _, data = s.post("/v1/chat/completions", {
                "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 24,
                "logprobs": True, "top_logprobs": 5, "seed": 1})
            assert st == 200, data
            for e in json.loads(data)["choices"][0]["logprobs"]["content"]:
                seen = {}
                for t in [e] + e["top_logprobs"]:
                    b = bytes(t["bytes"])
                    if t["token"] in seen:
                        assert seen[t["token"]] == b, e
                    seen[t["token"]] = b
                    try:
                        b.decode("utf-8")
                    except UnicodeDecodeError:
                        assert t["token"].startswith("bytes:\\x"), t
        finally:
            complaint = s.stop()
        assert not complaint, complaint[-4000:]


def main():
    if not os.path.exists(MODEL):
        print("skipped: %s not found" % MODEL)
        return 0
    s = small = None
    failures = 0
    try:
        s = Server()
        small = Server("--max-body", "1000")
        cases = [
            (server_http_oversized_content_length_at_once, (small,)),
            (server_http_bad_content_length, (s,)),
            (server_http_url_and_header_limits, (s,)),
            (server_http_keepalive_and_pipelining, (s,)),
            (server_http_models_retrieve, (s,)),
            (server_http_head_has_no_body, (s,)),
            (server_http_max_model_len_follows_kv_pool, ()),
            (server_http_cli_checks, ()),
            (server_http_byte_token_logprobs, ()),
        ]
        for fn, args in cases:
            t0 = time.time()
            try:
                fn(*args)
                print("ok   %s (%.2fs)" % (fn.__name__, time.time() - t0))
            except Exception as e:
                failures += 1
                import traceback
                traceback.print_exc()
                print("FAIL %s: %s" % (fn.__name__, e))
            for srv in (s, small):
                if srv.proc.poll() is not None:
                    print("FAIL server died (exit %s): %s"
                          % (srv.proc.returncode, srv.proc.stderr.read()[-2000:]))
                    return 1
    finally:
        for srv in (s, small):
            complaint = srv.stop() if srv else ""
            if complaint:
                print("FAIL sanitizer:\n" + complaint[-6000:])
                failures += 1
            if srv and ("[warn]" in srv.stderr_text or "[err]" in srv.stderr_text):
                print("FAIL libevent noise on stderr:\n" + srv.stderr_text[-2000:])
                failures += 1
    print("%d failure(s)" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
