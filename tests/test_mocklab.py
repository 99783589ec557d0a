"""test_mocklab.py: the mock model lab (tests/tools/mocklab.c) behaves as
the gateway tests and the overhead benchmark expect (stdlib only).

Covers both wire APIs (OpenAI chat/completions, Anthropic messages),
non-streamed and streamed with the SSE parsed, equal text and usage both
ways, auth, every fault by model name, the scripted fault queue, stats
(including client_closed when the client leaves a stalled stream or a
delayed reply), --no-usage, --cached-tokens, and 2,000 sequential
keep-alive requests. Cases are named mocklab_<behaviour>. Needs
$HOTPATH_TOOLS/mocklab; skips (exit 0) if it is absent.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

TOOLS = os.environ.get("HOTPATH_TOOLS", "")
BIN = os.path.join(TOOLS, "mocklab")
KEY = "sk-mock-test"


class Lab:
    """One mocklab process on a free port; always stopped."""

    def __init__(self, *args):
        self.p = subprocess.Popen([BIN, "--port", "0", "--quiet", *args],
                                  stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline().strip()
        assert line.startswith("listening on 127.0.0.1:"), line
        self.port = int(line.rsplit(":", 1)[1])

    def conn(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=timeout)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                rc = self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                raise AssertionError("mocklab ignored SIGTERM")
            assert rc == 0, rc


def hdrs(api):
    if api == "anthropic":
        return {"x-api-key": KEY, "anthropic-version": "2023-06-01",
                "content-type": "application/json"}
    return {"Authorization": "Bearer " + KEY,
            "content-type": "application/json"}


def call(lab, path, body, headers=None, raw=False):
    """POST/GET on a fresh connection; returns (status, headers, bytes)."""
    c = lab.conn()
    if body is None:
        c.request("GET", path, headers=headers or {})
    else:
        data = body if raw else json.dumps(body)
        c.request("POST", path, body=data, headers=headers or {})
    r = c.getresponse()
    try:
        data = r.read()
    except http.client.IncompleteRead as e:
        data = e.partial
        r.incomplete = True
    c.close()
    return r.status, r, data


def api_path(api):
    return {"chat": "/v1/chat/completions", "completions": "/v1/completions",
            "anthropic": "/v1/messages"}[api]


def request_body(api, model="m1", stream=False, **kw):
    if api == "chat":
        b = {"model": model, "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text",
                                          "text": "one two three"}]}]}
    elif api == "completions":
        b = {"model": model, "prompt": "alpha beta  gamma\ndelta"}
    else:
        b = {"model": model, "max_tokens": 100, "system": "be brief",
             "messages": [{"role": "user", "content": [
                 {"type": "text", "text": "one two three"}]}]}
    if stream:
        b["stream"] = True
        if api != "anthropic":
            b["stream_options"] = {"include_usage": True}
    b.update(kw)
    return b


def sse_events(data):
    """[(event name or None, data string)] of an SSE body."""
    out = []
    for block in data.decode().split("\n\n"):
        if not block.strip():
            continue
        name, payload = None, None
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                payload = line[6:]
        out.append((name, payload))
    return out


def stats(lab):
    st, _, data = call(lab, "/mock/stats", None)
    assert st == 200
    return json.loads(data)


def reset(lab):
    assert call(lab, "/mock/reset", {})[0] == 200


def openai_stream(lab, api, **kw):
    """Returns (text, finish_reason, usage or None, events)."""
    st, r, data = call(lab, api_path(api), request_body(api, stream=True, **kw),
                       hdrs(api))
    assert st == 200, (st, data)
    assert r.getheader("Content-Type").startswith("text/event-stream")
    ev = sse_events(data)
    assert ev[-1] == (None, "[DONE]"), ev[-1]
    chunks = [json.loads(d) for _, d in ev[:-1]]
    text, finish, usage = "", None, None
    obj = "chat.completion.chunk" if api == "chat" else "text_completion"
    for i, ch in enumerate(chunks):
        assert ch["object"] == obj and ch["model"] == kw.get("model", "m1")
        if "usage" in ch:
            assert ch["choices"] == [] and i == len(chunks) - 1
            usage = ch["usage"]
            continue
        c = ch["choices"][0]
        if api == "chat":
            if i == 0:
                assert c["delta"] == {"role": "assistant", "content": ""}
                continue
            if c["finish_reason"]:
                assert c["delta"] == {}
                finish = c["finish_reason"]
            else:
                text += c["delta"]["content"]
        else:
            if c["finish_reason"]:
                finish = c["finish_reason"]
            text += c["text"]
    return text, finish, usage, ev


def anthropic_stream(lab, **kw):
    st, _, data = call(lab, "/v1/messages",
                       request_body("anthropic", stream=True, **kw),
                       hdrs("anthropic"))
    assert st == 200, (st, data)
    ev = sse_events(data)
    names = [n for n, _ in ev]
    k = names.count("content_block_delta")
    assert names == (["message_start", "content_block_start", "ping"] +
                     ["content_block_delta"] * k +
                     ["content_block_stop", "message_delta", "message_stop"]
                     ), names
    js = [json.loads(d) for _, d in ev]
    for n, j in zip(names, js):
        assert j["type"] == n
    start, delta = js[0]["message"], js[-2]
    assert start["role"] == "assistant" and start["content"] == []
    text = "".join(j["delta"]["text"] for j in js[3:3 + k])
    usage = dict(start.get("usage") or {})
    if "usage" in delta:
        assert usage["output_tokens"] == 1
        usage["output_tokens"] = delta["usage"]["output_tokens"]
    return text, delta["delta"]["stop_reason"], usage or None, start


# ---- cases ---------------------------------------------------------------

def mocklab_openai_stream_matches_plain(lab):
    for api in ("chat", "completions"):
        st, _, data = call(lab, api_path(api), request_body(api), hdrs(api))
        assert st == 200, data
        j = json.loads(data)
        assert j["model"] == "m1"
        c = j["choices"][0]
        text = c["message"]["content"] if api == "chat" else c["text"]
        assert c["finish_reason"] == "stop"
        assert text == " ".join("w%d" % i for i in range(1, 9)), text
        # chat: "be brief" + "one two three" = 5 words; completions: 4
        words = 5 if api == "chat" else 4
        assert j["usage"]["prompt_tokens"] == words + 1, j["usage"]
        assert j["usage"]["completion_tokens"] == 8
        assert j["usage"]["total_tokens"] == words + 9
        assert j["usage"]["prompt_tokens_details"] == {"cached_tokens": 2}
        s_text, s_fin, s_usage, _ = openai_stream(lab, api)
        assert (s_text, s_fin, s_usage) == (text, "stop", j["usage"])
        # without include_usage there is no usage chunk
        b = request_body(api, stream=True)
        del b["stream_options"]
        st, _, data = call(lab, api_path(api), b, hdrs(api))
        assert b'"usage"' not in data and data.endswith(b"data: [DONE]\n\n")


def mocklab_max_tokens_cut_and_stop(lab):
    for api, field in (("chat", "max_tokens"),
                       ("chat", "max_completion_tokens"),
                       ("completions", "max_tokens")):
        b = request_body(api, **{field: 3})
        j = json.loads(call(lab, api_path(api), b, hdrs(api))[2])
        c = j["choices"][0]
        text = c["message"]["content"] if api == "chat" else c["text"]
        assert (text, c["finish_reason"]) == ("w1 w2 w3", "length"), j
        assert j["usage"]["completion_tokens"] == 3
        s = openai_stream(lab, api, **{field: 3})
        assert s[:2] == ("w1 w2 w3", "length") and s[2] == j["usage"]
    # max_tokens above the natural length does not cut
    j = json.loads(call(lab, "/v1/chat/completions",
                        request_body("chat", max_tokens=50), hdrs("chat"))[2])
    assert j["choices"][0]["finish_reason"] == "stop"
    assert j["usage"]["completion_tokens"] == 8
    # a stop sequence equal to a word ends the reply before it
    j = json.loads(call(lab, "/v1/chat/completions",
                        request_body("chat", stop=["zz", "w4"]),
                        hdrs("chat"))[2])
    assert j["choices"][0]["message"]["content"] == "w1 w2 w3"
    assert j["choices"][0]["finish_reason"] == "stop"


def mocklab_anthropic_stream_matches_plain(lab):
    st, r, data = call(lab, "/v1/messages", request_body("anthropic"),
                       hdrs("anthropic"))
    assert st == 200, data
    j = json.loads(data)
    assert j["id"].startswith("msg_") and j["type"] == "message"
    assert j["role"] == "assistant" and j["model"] == "m1"
    assert j["content"] == [{"type": "text",
                             "text": " ".join("w%d" % i for i in range(1, 9))}]
    assert j["stop_reason"] == "end_turn" and j["stop_sequence"] is None
    u = j["usage"]
    # 5 prompt words + 1 = input_tokens + cache_read_input_tokens
    assert u == {"input_tokens": 4, "output_tokens": 8,
                 "cache_read_input_tokens": 2,
                 "cache_creation_input_tokens": 0}, u
    text, reason, usage, start = anthropic_stream(lab)
    assert (text, reason, usage) == (j["content"][0]["text"], "end_turn", u)
    assert start["model"] == "m1"
    # max_tokens cuts; stop_sequences stop
    j = json.loads(call(lab, "/v1/messages",
                        request_body("anthropic", max_tokens=2),
                        hdrs("anthropic"))[2])
    assert j["content"][0]["text"] == "w1 w2"
    assert j["stop_reason"] == "max_tokens"
    assert anthropic_stream(lab, max_tokens=2)[:2] == ("w1 w2", "max_tokens")
    j = json.loads(call(lab, "/v1/messages",
                        request_body("anthropic", stop_sequences=["w2"]),
                        hdrs("anthropic"))[2])
    assert j["content"][0]["text"] == "w1"
    assert (j["stop_reason"], j["stop_sequence"]) == ("stop_sequence", "w2")
    # max_tokens is required
    b = request_body("anthropic")
    del b["max_tokens"]
    st, _, data = call(lab, "/v1/messages", b, hdrs("anthropic"))
    e = json.loads(data)
    assert st == 400 and e["type"] == "error"
    assert e["error"]["type"] == "invalid_request_error"


def mocklab_auth_required(lab):
    for api in ("chat", "completions", "anthropic"):
        for h in ({}, {"Authorization": "Bearer wrong", "x-api-key": "wrong"}):
            st, _, data = call(lab, api_path(api), request_body(api), h)
            assert st == 401, (api, h, st)
            e = json.loads(data)
            if api == "anthropic":
                assert e["type"] == "error"
                assert e["error"]["type"] == "authentication_error"
                assert e["error"]["message"]
            else:
                assert set(e["error"]) == {"message", "type", "param", "code"}
                assert e["error"]["type"] == "invalid_request_error"
                assert e["error"]["param"] is None
                assert e["error"]["code"] == "invalid_api_key"
    # each API takes its own header only
    st = call(lab, "/v1/messages", request_body("anthropic"),
              {"Authorization": "Bearer " + KEY})[0]
    assert st == 401
    st = call(lab, "/v1/chat/completions", request_body("chat"),
              {"x-api-key": KEY})[0]
    assert st == 401
    st, _, data = call(lab, "/v1/models", None, hdrs("chat"))
    assert st == 200 and json.loads(data)["data"][0]["id"] == "mock-model"
    assert call(lab, "/v1/models", None)[0] == 401
    assert call(lab, "/nope", None)[0] == 404


def check_error(api, st, r, data, code):
    assert st == code, (api, st, code, data)
    e = json.loads(data)
    if api == "anthropic":
        assert e["type"] == "error" and e["error"]["message"]
    else:
        assert e["error"]["message"] and "type" in e["error"]
    assert (r.getheader("Retry-After") == "1") == (code == 429)


def mocklab_error_faults(lab):
    for api in ("chat", "completions", "anthropic"):
        for code in (401, 429, 500, 503):
            for stream in (False, True):
                b = request_body(api, model="fault-%d" % code, stream=stream)
                st, r, data = call(lab, api_path(api), b, hdrs(api))
                check_error(api, st, r, data, code)
    # an unknown fault name answers normally
    st = call(lab, "/v1/chat/completions",
              request_body("chat", model="fault-bogus"), hdrs("chat"))[0]
    assert st == 200


def mocklab_slow_fault(lab):
    for api in ("chat", "anthropic"):
        for stream in (False, True):
            t0 = time.time()
            st, _, data = call(lab, api_path(api),
                               request_body(api, model="fault-slow-300",
                                            stream=stream), hdrs(api))
            dt = time.time() - t0
            assert st == 200 and 0.3 <= dt < 3, (api, stream, dt)
            assert b"w8" in data


def raw_request(port, path, body, headers):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    data = json.dumps(body).encode()
    head = "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % (
        path, len(data))
    head += "".join("%s: %s\r\n" % kv for kv in headers.items()) + "\r\n"
    s.sendall(head.encode() + data)
    return s


def read_until_closed(s, limit=5):
    out = b""
    s.settimeout(limit)
    while True:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        out += b
    return out


def token_count(api, data):
    key = b'"text_delta"' if api == "anthropic" else (
        b'"delta":{"content"' if api == "chat" else b'"text":"')
    n = data.count(key)
    if api == "completions":
        n -= data.count(b'"text":""')
    return n


def mocklab_cut_fault(lab):
    for api in ("chat", "completions", "anthropic"):
        s = raw_request(lab.port, api_path(api),
                        request_body(api, model="fault-cut-3", stream=True),
                        hdrs(api))
        data = read_until_closed(s)  # the server closes: no timeout
        s.close()
        assert data.startswith(b"HTTP/1.1 200"), data[:80]
        assert token_count(api, data) == 3, data
        assert b"[DONE]" not in data and b"message_stop" not in data
        assert b"\r\n0\r\n\r\n" not in data  # no terminating chunk
        # non-streamed: Content-Length promises more than arrives
        s = raw_request(lab.port, api_path(api),
                        request_body(api, model="fault-cut-3"), hdrs(api))
        data = read_until_closed(s)
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        cl = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
              if line.lower().startswith(b"content-length:")]
        assert cl and 0 < len(body) < cl[0], (cl, len(body))
        st, r, _ = call(lab, api_path(api),
                        request_body(api, model="fault-cut-1", stream=True),
                        hdrs(api))
        assert getattr(r, "incomplete", False) or st == 200


def wait_stats(lab, pred, what):
    t0 = time.time()
    while time.time() - t0 < 5:
        s = stats(lab)
        if pred(s):
            return s
        time.sleep(0.02)
    raise AssertionError("timed out waiting for %s: %r" % (what, s))


def mocklab_stall_counts_client_close(lab):
    reset(lab)
    for api in ("chat", "anthropic"):
        before = stats(lab)["client_closed"]
        s = raw_request(lab.port, api_path(api),
                        request_body(api, model="fault-stall-2", stream=True),
                        hdrs(api))
        data = b""
        s.settimeout(5)
        while token_count(api, data) < 2:
            b = s.recv(65536)
            assert b, data
            data += b
        s.settimeout(0.3)
        try:
            more = s.recv(65536)
        except socket.timeout:
            more = None
        assert more is None, more  # stalled: nothing more, still open
        assert stats(lab)["active"] == 1
        s.close()
        wait_stats(lab, lambda st: st["client_closed"] == before + 1
                   and st["active"] == 0, "client_closed after stall")
    # non-streamed stall never answers; a delayed reply that the client
    # abandons before the first byte is counted too
    for model in ("fault-stall-0", "fault-slow-5000"):
        before = stats(lab)["client_closed"]
        s = raw_request(lab.port, "/v1/chat/completions",
                        request_body("chat", model=model), hdrs("chat"))
        wait_stats(lab, lambda st: st["active"] == 1, "active")
        s.close()
        wait_stats(lab, lambda st: st["client_closed"] == before + 1
                   and st["active"] == 0, "client_closed " + model)


def mocklab_malformed_fault(lab):
    for api in ("chat", "completions", "anthropic"):
        st, _, data = call(lab, api_path(api),
                           request_body(api, model="fault-malformed-2",
                                        stream=True), hdrs(api))
        assert st == 200
        ev = sse_events(data)
        bad = [i for i, (_, d) in enumerate(ev) if d == "{not json"]
        assert len(bad) == 1, ev
        assert token_count(api, b"".join(
            d.encode() for _, d in ev[:bad[0]])) == 2
        assert token_count(api, data) == 8  # then it continues normally
        assert ev[-1][1] in ("[DONE]", '{"type":"message_stop"}')
    st, _, data = call(lab, "/v1/chat/completions",
                       request_body("chat", model="fault-malformed-0"),
                       hdrs("chat"))
    assert st == 200 and data == b"{not json"


def mocklab_script_queue(lab):
    reset(lab)
    st, _, data = call(lab, "/mock/script",
                       {"faults": ["500", "ok", "429", "cut-0", "ok"]})
    assert st == 200 and json.loads(data) == {"queued": 5}
    got = []
    for i in range(6):
        # "ok" overrides even a fault model; after the queue the model wins
        model = "fault-503" if i in (1, 5) else "m1"
        st, _, data = call(lab, "/v1/messages",
                           request_body("anthropic", model=model),
                           hdrs("anthropic"))
        got.append(st)
    assert got[:3] == [500, 200, 429] and got[4:] == [200, 503], got
    assert stats(lab)["script_left"] == 0
    st = call(lab, "/mock/script", {"faults": ["500", "nope"]})[0]
    assert st == 400
    assert call(lab, "/mock/script", {"faults": "500"})[0] == 400
    call(lab, "/mock/script", {"faults": ["500", "500"]})
    reset(lab)  # clears the queue
    st = call(lab, "/v1/chat/completions", request_body("chat"),
              hdrs("chat"))[0]
    assert st == 200


def mocklab_stats(lab):
    reset(lab)
    s = stats(lab)
    assert s["requests"] == 0 and s["by_model"] == {}
    assert s["last_request"] is None and s["last_headers"] == {}
    call(lab, "/v1/chat/completions", request_body("chat", model="a"),
         hdrs("chat"))
    call(lab, "/v1/chat/completions", request_body("chat", model="a"), {})
    b = request_body("anthropic", model="b")
    call(lab, "/v1/messages", b, dict(hdrs("anthropic"), **{"X-Trace": "t1"}))
    call(lab, "/v1/models", None, hdrs("chat"))  # not a model request
    s = stats(lab)
    assert s["requests"] == 3 and s["by_model"] == {"a": 2, "b": 1}, s
    assert s["last_request"] == b
    h = s["last_headers"]
    assert h["x-api-key"] == KEY and h["x-trace"] == "t1"
    assert h["anthropic-version"] == "2023-06-01"
    assert s["active"] == 0


def mocklab_no_usage():
    lab = Lab("--no-usage", "--tokens", "4", "--itl-ms", "2")
    try:
        for api in ("chat", "completions"):
            j = json.loads(call(lab, api_path(api), request_body(api))[2])
            assert "usage" not in j
            text, fin, usage, _ = openai_stream(lab, api)
            assert (text, fin, usage) == ("w1 w2 w3 w4", "stop", None)
        j = json.loads(call(lab, "/v1/messages", request_body("anthropic"))[2])
        assert "usage" not in j and j["content"][0]["text"] == "w1 w2 w3 w4"
        text, reason, usage, _ = anthropic_stream(lab)
        assert (text, reason, usage) == ("w1 w2 w3 w4", "end_turn", None)
    finally:
        lab.stop()


def mocklab_keepalive_2000():
    lab = Lab("--ttft-ms", "0")
    try:
        c = lab.conn()
        body = json.dumps(request_body("chat", max_tokens=2))
        t0 = time.time()
        for i in range(2000):
            c.request("POST", "/v1/chat/completions", body=body,
                      headers={"content-type": "application/json"})
            r = c.getresponse()
            data = r.read()
            assert r.status == 200 and b"w1 w2" in data
        dt = time.time() - t0
        assert dt < 30, dt
        c.close()
        assert stats(lab)["requests"] == 2000
        print("  2000 keep-alive requests in %.2f s" % dt)
    finally:
        lab.stop()


def mocklab_cli():
    r = subprocess.run([BIN, "--help"], capture_output=True, text=True,
                       timeout=5)
    assert r.returncode == 0 and "--ttft-ms" in r.stdout
    r = subprocess.run([BIN, "--tokens", "x"], capture_output=True,
                       text=True, timeout=5)
    assert r.returncode == 2 and "usage" in r.stderr


def main():
    if not os.path.exists(BIN):
        print("skipped: %s not built" % BIN)
        return 0
    lab = Lab("--require-key", KEY, "--cached-tokens", "2")
    cases = [mocklab_openai_stream_matches_plain,
             mocklab_max_tokens_cut_and_stop,
             mocklab_anthropic_stream_matches_plain,
             mocklab_auth_required, mocklab_error_faults,
             mocklab_slow_fault, mocklab_cut_fault,
             mocklab_stall_counts_client_close, mocklab_malformed_fault,
             mocklab_script_queue, mocklab_stats]
    try:
        for case in cases:
            case(lab)
            print("ok", case.__name__)
        assert lab.p.poll() is None, "mocklab died"
    finally:
        lab.stop()
    for case in (mocklab_no_usage, mocklab_keepalive_2000, mocklab_cli):
        case()
        print("ok", case.__name__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
