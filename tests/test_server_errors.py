"""test_server_errors.py: every client mistake gets the right status and
OpenAI's error JSON {"error": {"message", "type", "param", "code"}}; garbage
never gets a 500 and never kills the server (stdlib only).

Starts its own servers on free loopback ports (one with --max-body 1000)
with the real stories260K model and always stops them. Skips (exit 0) when
the model is absent. Cases are named server_errors_<behaviour>.
"""
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server_api import BIN, MODEL, Server  # noqa: E402

COMPLETIONS = "/v1/completions"
CHAT = "/v1/chat/completions"


def check_error(st, h, data, status, param="?", code="?", contains=()):
    """Assert an OpenAI error reply; "?" skips the param/code check."""
    assert st == status, "status %d != %d: %r" % (st, status, data[:300])
    assert h.get("Content-Type", "").startswith("application/json"), h
    e = json.loads(data)
    assert set(e) == {"error"}, e
    err = e["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str)
    if param != "?":
        assert err["param"] == param, (err, param)
    if code != "?":
        assert err["code"] == code, (err, code)
    for c in contains:
        assert c in err["message"], (c, err["message"])
    return err


BASE_C = {"prompt": "Once upon a time", "max_tokens": 4}
BASE_CHAT = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}

# (endpoint, field, bad value, message fragments)
WRONG_TYPES = [
    (COMPLETIONS, "max_tokens", "16", ["max_tokens", "integer"]),
    (COMPLETIONS, "max_tokens", 1.5, ["max_tokens"]),
    (CHAT, "max_completion_tokens", "x", ["max_completion_tokens"]),
    (COMPLETIONS, "temperature", "hot", ["temperature", "number"]),
    (COMPLETIONS, "top_p", [1], ["top_p"]),
    (COMPLETIONS, "top_k", 2.5, ["top_k"]),
    (COMPLETIONS, "min_p", {}, ["min_p"]),
    (COMPLETIONS, "frequency_penalty", True, ["frequency_penalty"]),
    (COMPLETIONS, "presence_penalty", "0", ["presence_penalty"]),
    (COMPLETIONS, "repeat_penalty", "1", ["repeat_penalty"]),
    (COMPLETIONS, "seed", 1.5, ["seed"]),
    (COMPLETIONS, "seed", "42", ["seed"]),
    (COMPLETIONS, "stop", 5, ["stop"]),
    (COMPLETIONS, "stop", ["a", 1], ["stop"]),
    (COMPLETIONS, "n", "2", ["'n'"]),
    (COMPLETIONS, "stream", "yes", ["stream"]),
    (COMPLETIONS, "stream", 1, ["stream"]),
    (COMPLETIONS, "logprobs", True, ["logprobs"]),
    (CHAT, "logprobs", 3, ["logprobs"]),
    (COMPLETIONS, "logit_bias", [1, 2], ["logit_bias"]),
    (COMPLETIONS, "logit_bias", {"abc": 1}, ["logit_bias"]),
    (COMPLETIONS, "logit_bias", {"5": "x"}, ["logit_bias"]),
    (COMPLETIONS, "echo", "true", ["echo"]),
    (COMPLETIONS, "model", 5, ["model"]),
    (COMPLETIONS, "prompt", 5, ["prompt"]),
    (COMPLETIONS, "prompt", {"a": 1}, ["prompt"]),
    (COMPLETIONS, "prompt", [1, "a"], ["prompt"]),
    (COMPLETIONS, "prompt", ["a", "b"], ["prompt"]),
    (CHAT, "messages", "hello", ["messages"]),
    (CHAT, "messages", {"role": "user"}, ["messages"]),
    (CHAT, "stream_options", "x", ["stream_options"]),
]

OUT_OF_RANGE = [
    (COMPLETIONS, "max_tokens", 0, ["max_tokens", "[1,"]),
    (COMPLETIONS, "max_tokens", -5, ["max_tokens"]),
    (CHAT, "max_completion_tokens", 0, ["max_completion_tokens"]),
    (COMPLETIONS, "temperature", 2.5, ["temperature", "[0, 2]"]),
    (COMPLETIONS, "temperature", -0.1, ["temperature"]),
    (COMPLETIONS, "top_p", 0, ["top_p", "(0, 1]"]),
    (COMPLETIONS, "top_p", 1.01, ["top_p"]),
    (COMPLETIONS, "top_k", -2, ["top_k"]),
    (COMPLETIONS, "min_p", 1.5, ["min_p", "[0, 1]"]),
    (COMPLETIONS, "frequency_penalty", 2.5, ["frequency_penalty", "[-2, 2]"]),
    (COMPLETIONS, "presence_penalty", -3, ["presence_penalty"]),
    (COMPLETIONS, "repeat_penalty", 0, ["repeat_penalty"]),
    (COMPLETIONS, "repeat_penalty", -1, ["repeat_penalty"]),
    (COMPLETIONS, "n", 0, ["'n'", "[1, 16]"]),
    (COMPLETIONS, "n", 17, ["'n'"]),
    (COMPLETIONS, "stop", ["a", "b", "c", "d", "e"], ["stop", "4"]),
    (COMPLETIONS, "logprobs", 6, ["logprobs", "[0, 5]"]),
    (COMPLETIONS, "logprobs", -1, ["logprobs"]),
    (CHAT, "top_logprobs", 21, ["top_logprobs"]),
    (COMPLETIONS, "logit_bias", {"5": 101}, ["logit_bias", "[-100, 100]"]),
    (COMPLETIONS, "logit_bias", {"5": -100.5}, ["logit_bias"]),
    (COMPLETIONS, "logit_bias", {"512": 1}, ["logit_bias", "511"]),
    (COMPLETIONS, "logit_bias", {"-1": 1}, ["logit_bias"]),
    (COMPLETIONS, "prompt", [1, 512], ["prompt", "511"]),
    (COMPLETIONS, "prompt", [-1], ["prompt"]),
    (COMPLETIONS, "prompt", [], ["prompt"]),
]


def server_errors_wrong_types_and_ranges(s):
    """Each wrong type or out-of-range value is a 400 invalid_request_error
    whose param names the field and whose message names field and range."""
    for table in (WRONG_TYPES, OUT_OF_RANGE):
        for path, field, value, frags in table:
            body = dict(BASE_C if path == COMPLETIONS else BASE_CHAT)
            body[field] = value
            st, h, data = s.post(path, body)
            try:
                err = check_error(st, h, data, 400, contains=frags)
                assert err["type"] == "invalid_request_error"
                assert err["param"] == field, err
            except AssertionError as e:
                raise AssertionError("%s %s=%r: %s" % (path, field, value, e))


def server_errors_request_shape(s):
    """Malformed JSON, non-object bodies, missing prompt/messages, empty
    messages, bad message parts and roles: 400 with the right param."""
    cases = [
        (COMPLETIONS, b"{", None), (COMPLETIONS, b"", None),
        (COMPLETIONS, b"{'prompt': 'x'}", None), (COMPLETIONS, b"[1,2]", None),
        (COMPLETIONS, b'"text"', None), (COMPLETIONS, b"42", None),
        (COMPLETIONS, b"null", None), (CHAT, b"[]", None),
        (COMPLETIONS, b'{"max_tokens": 3}', "prompt"),
        (COMPLETIONS, b'{"prompt": null}', "prompt"),
        (CHAT, b'{"max_tokens": 3}', "messages"),
        (CHAT, b'{"messages": []}', "messages"),
        (CHAT, b'{"messages": [1]}', "messages[0]"),
        (CHAT, b'{"messages": [{"role": "wizard", "content": "x"}]}', "messages[0].role"),
        (CHAT, b'{"messages": [{"content": "x"}]}', "messages[0].role"),
        (CHAT, b'{"messages": [{"role": "user", "content": 5}]}', "messages[0].content"),
        (CHAT, b'{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}',
         "messages[0].content"),
        (CHAT, b'{"messages": [{"role":"user","content":"x"}], "top_logprobs": 2}', "top_logprobs"),
        (COMPLETIONS, b'{"prompt": "x", "stream_options": {"include_usage": true}}', "stream_options"),
        (COMPLETIONS, b'{"prompt": "x", "echo": true, "logprobs": 1}', "echo"),
    ]
    for path, body, param in cases:
        st, h, data = s.post(path, body)
        try:
            check_error(st, h, data, 400, param=param)
        except AssertionError as e:
            raise AssertionError("%s %r: %s" % (path, body, e))


def server_errors_unknown_model(s):
    """An unknown model is 404 model_not_found; the served one is fine."""
    for path, base in ((COMPLETIONS, BASE_C), (CHAT, BASE_CHAT)):
        body = dict(base, model="gpt-4o")
        st, h, data = s.post(path, body)
        check_error(st, h, data, 404, param="model", code="model_not_found",
                    contains=["gpt-4o"])
    st, _, data = s.request("GET", "/v1/models")
    name = json.loads(data)["data"][0]["id"]
    st, _, _ = s.post(COMPLETIONS, dict(BASE_C, model=name))
    assert st == 200


def server_errors_routes(s):
    """Unknown paths are 404, wrong methods on known paths 405 with Allow."""
    for method, path in (("GET", "/v1/nothing"), ("POST", "/v2/completions"),
                         ("GET", "/"), ("POST", "/v1/embeddings")):
        st, h, data = s.request(method, path, b"{}" if method == "POST" else None)
        check_error(st, h, data, 404)
    for method, path, allow in (("GET", COMPLETIONS, "POST"), ("PUT", CHAT, "POST"),
                                ("DELETE", COMPLETIONS, "POST"),
                                ("POST", "/v1/models", "GET"), ("POST", "/health", "GET")):
        st, h, data = s.request(method, path, b"{}")
        check_error(st, h, data, 405)
        assert allow in h.get("Allow", ""), (method, path, h)


def server_errors_context_overflow(s):
    """prompt + max_tokens over the context is a 400
    context_length_exceeded naming the three numbers."""
    st, h, data = s.post(COMPLETIONS, {"prompt": "Once upon a time", "max_tokens": 2100})
    err = check_error(st, h, data, 400, code="context_length_exceeded",
                      contains=["2048", "2105", "5 in the prompt", "2100 in the completion"])
    assert err["type"] == "invalid_request_error"
    long_text = "Once upon a time " * 600  # about 2400 tokens
    st, h, data = s.post(CHAT, {"messages": [{"role": "user", "content": long_text}]})
    check_error(st, h, data, 400, code="context_length_exceeded",
                contains=["maximum context length is 2048", "in the messages"])
    # the default 16 for completions counts too
    st, h, data = s.post(COMPLETIONS, {"prompt": [1] * 2040})
    check_error(st, h, data, 400, code="context_length_exceeded",
                contains=["2040 in the prompt", "16 in the completion"])


def raw(port, payload, read_timeout=10):
    """Send raw bytes, return what the server answers before closing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    try:
        sock.sendall(payload)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        out = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        sock.close()


def parse_raw(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 100"):
        head, _, body = body.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip()] = v.strip()
    return status, headers, body


def server_errors_body_limit(small):
    """Over --max-body (1000): 413 JSON for a Content-Length body and for a
    chunked one, without reading it all into memory; under it is fine."""
    body = json.dumps({"prompt": "x" * 2000, "max_tokens": 1})
    st, h, data = small.post(COMPLETIONS, body)
    check_error(st, h, data, 413, contains=["1000"])
    ok = json.dumps({"prompt": "Once", "max_tokens": 1})
    st, _, _ = small.post(COMPLETIONS, ok)
    assert st == 200
    # chunked, in 300-byte chunks
    payload = body.encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 300]), payload[i:i + 300])
                      for i in range(0, len(payload), 300)) + b"0\r\n\r\n"
    resp = raw(small.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                           b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
               + chunks)
    st, h, data = parse_raw(resp)
    check_error(st, h, data, 413)
    # a huge announced body is refused from its header alone
    resp = raw(small.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Length: 99999999999\r\n\r\n{")
    if resp:  # the server may also just close
        st, h, data = parse_raw(resp)
        assert st in (400, 413), resp[:200]
    st, _, _ = small.request("GET", "/health")
    assert st == 200


def server_errors_fuzz(s):
    """Random bytes, deep nesting, huge numbers, NaN, wrong types anywhere:
    never a 500, always the error JSON shape; the server stays alive."""
    rng = random.Random(7)
    bodies = [
        b"[" * 100000, b"{\"a\":" * 5000 + b"1" + b"}" * 5000,
        b'{"prompt": "x", "max_tokens": 1e999}',
        b'{"prompt": "x", "max_tokens": 99999999999999999999999999}',
        b'{"prompt": "x", "temperature": NaN}',
        b'{"prompt": "x", "temperature": Infinity}',
        b'{"prompt": "x", "max_tokens": 9223372036854775807}',
        b'{"prompt": "x", "seed": -9223372036854775808, "max_tokens": 1}',
        b'{"prompt": "\\ud800", "max_tokens": 1}',
        b'{"prompt": "a\\u0000b", "max_tokens": 1}',
        b'{"prompt": "\xff\xfe", "max_tokens": 1}',
        b'{"messages": [{"role": "user", "content": [{"type": "text"}]}]}',
        b'{"messages": [{"role": "user", "content": [5]}]}',
        b'{"prompt": [[1, 2], [3]]}',
        b'{"prompt": [[]]}',
        b'{"prompt": "x", "logit_bias": {"": 1}}',
        b'{"prompt": "x", "logit_bias": {" 5": 1}}',
        b'{"prompt": "x", "logit_bias": {"99999999999999999999": 1}}',
        b'{"prompt": "x", "stop": [""], "max_tokens": 2}',
        b'{"prompt": "x", "stop": null, "n": null, "max_tokens": 2}',
    ]
    for _ in range(150):
        n = rng.randrange(0, 300)
        bodies.append(bytes(rng.randrange(256) for _ in range(n)))
    keys = ["prompt", "messages", "max_tokens", "temperature", "top_p", "n", "stop",
            "stream", "logprobs", "logit_bias", "seed", "model", "stream_options",
            "echo", "top_k", "min_p", "top_logprobs"]
    values = [None, True, False, 0, -1, 1, 3.5, 1e300, -1e300, "", "x", [], [1], ["a"],
              {}, {"a": 1}, [[1]], [{"role": "user"}], "\u00e9\U0001F600"]
    for _ in range(150):
        o = {k: rng.choice(values) for k in rng.sample(keys, rng.randrange(1, 6))}
        if rng.random() < 0.5:
            o.setdefault("prompt", "Once")
        if isinstance(o.get("max_tokens"), int) or "max_tokens" not in o:
            o["max_tokens"] = 2
        bodies.append(json.dumps(o).encode())
    for i, b in enumerate(bodies):
        path = CHAT if i % 3 == 0 else COMPLETIONS
        st, h, data = s.post(path, b, timeout=30)
        assert st != 500 and st < 500, (path, b[:200], st, data[:300])
        if st != 200:
            check_error(st, h, data, st)
        elif h.get("Content-Type", "").startswith("application/json"):
            assert "choices" in json.loads(data)
    st, _, _ = s.request("GET", "/health")
    assert st == 200


def server_errors_malformed_http(s):
    """A malformed request line gets a JSON 400 (libevent's own error page
    rewritten), and the server lives on."""
    resp = raw(s.port, b"GARBAGE\r\n\r\n")
    if resp:
        st, h, data = parse_raw(resp)
        check_error(st, h, data, 400)
    raw(s.port, bytes(random.Random(3).randrange(256) for _ in range(4000)))
    st, _, _ = s.request("GET", "/health")
    assert st == 200


def server_errors_cli(s):
    """A bad model path exits 1 naming the file; a port in use exits 1
    naming the address; an unknown flag exits 2."""
    p = subprocess.run([BIN, "serve", "-m", "/nonexistent/model.gguf", "--port", "0"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "/nonexistent/model.gguf" in p.stderr, p
    p = subprocess.run([BIN, "serve", "-m", MODEL, "--port", str(s.port)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and str(s.port) in p.stderr, p
    p = subprocess.run([BIN, "serve", "-m", MODEL, "--bogus"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p
    p = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0
    for flag in ("--model", "--host", "--port", "--ctx-size", "--threads", "--parallel",
                 "--max-body", "--model-name", "--max-queue"):
        assert flag in p.stdout, flag


def drain_socket(sock):
    """Read and drop everything until the peer or we close."""
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


def wait_metric(s, line, limit=20):
    """Poll /metrics until it contains line (bytes) or limit seconds pass."""
    t0 = time.time()
    while time.time() - t0 < limit:
        _, _, met = s.request("GET", "/metrics")
        if line in met:
            return True
        time.sleep(0.02)
    return False


def server_errors_model_name_and_queue():
    """--model-name sets the id clients must send; with one running slot
    and --max-queue 1, a request beyond the queue gets 429 with
    Retry-After."""
    # a long context so the slot-holding stream outlasts the checks
    s = Server("--model-name", "tiny", "--parallel", "1", "--max-queue", "1",
               "--ctx-size", "65536")
    socks = []
    try:
        st, _, data = s.request("GET", "/v1/models")
        assert json.loads(data)["data"][0]["id"] == "tiny"
        st, _, _ = s.post(COMPLETIONS, dict(BASE_C, model="tiny"))
        assert st == 200
        st, h, data = s.post(COMPLETIONS, dict(BASE_C, model="llama"))
        check_error(st, h, data, 404, code="model_not_found")
        # a long stream takes the slot, a second request waits in the queue
        for stream in (True, False):
            sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
            body = json.dumps({"prompt": "Once", "max_tokens": 65000, "stream": stream,
                               "ignore_eos": True, "temperature": 1})
            sock.sendall(("POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                          "Content-Length: %d\r\n\r\n%s" % (len(body), body)).encode())
            socks.append(sock)
            if stream:
                assert sock.recv(4096).startswith(b"HTTP/1.1 200")
                threading.Thread(target=drain_socket, args=(sock,), daemon=True).start()
                # the 200 header goes out when the stream is queued, not
                # when it runs: send the second request only once the
                # stream holds the slot, or the second one finds the queue
                # full (429, unread) and the probe below takes its place
                wait_metric(s, b'hotpath_num_requests_running{model="tiny"} 1')
        # and wait until the second request is really queued
        assert wait_metric(s, b'hotpath_num_requests_waiting{model="tiny"} 1'), \
            "the second request was never queued"
        st, h, data = s.post(COMPLETIONS, BASE_C, timeout=20)
        check_error(st, h, data, 429)
        assert h.get("Retry-After") == "1", h
        for sock in socks:
            sock.close()
        socks = []
        # the cancelled requests free the slot within a step or two
        t0 = time.time()
        while True:
            st, _, data = s.post(COMPLETIONS, BASE_C, timeout=30)
            if st == 200 or time.time() - t0 > 5:
                break
            time.sleep(0.05)
        assert st == 200, (st, data, time.time() - t0)
    finally:
        for sock in socks:
            sock.close()
        complaint = s.stop()
    assert not complaint, complaint[-6000:]


def main():
    if not os.path.exists(MODEL):
        print("skipped: %s not found" % MODEL)
        return 0
    s = Server()
    small = None
    failures = 0
    try:
        small = Server("--max-body", "1000")
        cases = [
            (server_errors_wrong_types_and_ranges, (s,)),
            (server_errors_request_shape, (s,)),
            (server_errors_unknown_model, (s,)),
            (server_errors_routes, (s,)),
            (server_errors_context_overflow, (s,)),
            (server_errors_body_limit, (small,)),
            (server_errors_fuzz, (s,)),
            (server_errors_malformed_http, (s,)),
            (server_errors_cli, (s,)),
            (server_errors_model_name_and_queue, ()),
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
    print("%d failure(s)" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
