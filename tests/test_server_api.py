"""test_server_api.py: the OpenAI-compatible API of `hotpath serve`, as a
client sees it (stdlib only).

Starts its own server on a free loopback port (--port 0, port read from the
listening line) with the real stories260K model and always stops it.
Golden continuations come from $HOTPATH_SHARED/models/golden (llama2.c's
run.c at temperature 0). Skips (exit 0) when the model is absent.

Cases are named server_api_<behaviour>; each states the behaviour it checks.
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

SHARED = os.environ.get("HOTPATH_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
BIN = os.environ.get("HOTPATH_BIN", "hotpath")
MODEL = os.path.join(SHARED, "models", "stories260K.gguf")
GOLDEN = os.path.join(SHARED, "models", "golden")


class Server:
    """A `hotpath serve` child on a free port; stop() always kills it."""

    def __init__(self, *extra):
        self.proc = subprocess.Popen(
            [BIN, "serve", "-m", MODEL, "--port", "0", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self._readline(timeout=30)
        if not line.startswith("hotpath: serving "):
            self.stop()
            raise RuntimeError("no listening line, got %r" % line)
        self.line = line
        self.port = int(line.rsplit(":", 1)[1])

    def _readline(self, timeout):
        out = []
        t = threading.Thread(target=lambda: out.append(self.proc.stdout.readline()))
        t.daemon = True
        t.start()
        t.join(timeout)
        return out[0].strip() if out else ""

    def conn(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=60):
        c = self.conn(timeout)
        try:
            if body is not None and not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            h = {"Content-Type": "application/json"}
            h.update(headers or {})
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, dict(r.getheaders()), data
        finally:
            c.close()

    def post(self, path, body, **kw):
        st, h, data = self.request("POST", path, body, **kw)
        return st, h, data

    def stop(self):
        """Stop (SIGTERM, then SIGKILL); return sanitizer complaints found
        in its stderr (empty when clean), for sanitizer builds."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not hasattr(self, "stderr_text"):
            self.stderr_text = self.proc.stderr.read()
        bad = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer")
        return self.stderr_text if any(b in self.stderr_text for b in bad) else ""


def sse_events(data):
    """Split an SSE body into the payloads of its `data:` records."""
    text = data.decode("utf-8")
    assert text.endswith("\n\n"), "stream must end with a blank line"
    events = []
    for rec in text.split("\n\n"):
        if not rec:
            continue
        assert rec.startswith("data: "), "record without data: %r" % rec[:80]
        events.append(rec[len("data: "):])
    return events


def stream_json(data):
    ev = sse_events(data)
    assert ev[-1] == "[DONE]", "stream must end with [DONE]"
    assert "[DONE]" not in ev[:-1]
    return [json.loads(e) for e in ev[:-1]]


def golden(k):
    with open(os.path.join(GOLDEN, "stories260K_t0_n100_prompt%d.prompt" % k)) as f:
        prompt = f.read()
    if prompt.endswith("\n"):  # the file ends with a newline the prompt lacks
        prompt = prompt[:-1]
    with open(os.path.join(GOLDEN, "stories260K_t0_n100_prompt%d.txt" % k)) as f:
        txt = f.read()
    with open(os.path.join(GOLDEN, "stories260K_t0_n100_prompt%d.ids" % k)) as f:
        ids = f.read().split()
    assert txt.startswith(prompt) and txt.endswith("\n")
    return prompt, txt[len(prompt):-1], len(ids)


# ---- cases ------------------------------------------------------------------

def server_api_health_and_models(s):
    """GET /health is {"status":"ok"}; /v1/models lists the served id in
    OpenAI's list shape; the listening line names the model and port."""
    st, h, data = s.request("GET", "/health")
    assert st == 200 and json.loads(data) == {"status": "ok"}
    st, h, data = s.request("GET", "/v1/models")
    assert st == 200 and h["Content-Type"].startswith("application/json")
    m = json.loads(data)
    assert m["object"] == "list" and len(m["data"]) == 1
    d = m["data"][0]
    assert d["object"] == "model" and d["owned_by"] == "hotpath"
    assert isinstance(d["id"], str) and d["id"]
    assert isinstance(d["created"], int)
    assert (" as %s on http://127.0.0.1:%d" % (d["id"], s.port)) in s.line
    st, _, data = s.request("GET", "/models")  # /v1 prefix is optional
    assert st == 200 and json.loads(data) == m
    return d["id"]


def completion(s, prompt, max_tokens, stream=False, **kw):
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
    body.update(kw)
    if stream:
        body["stream"] = True
    st, h, data = s.post("/v1/completions", body)
    assert st == 200, (st, data[:300])
    return h, data


def server_api_golden_completions(s, model_id):
    """The three golden prompts at temperature 0 give exactly run.c's
    continuation, streamed and not; the streamed deltas concatenate to the
    non-streamed text; usage and finish_reason "length" are right."""
    for k in (1, 2, 3):
        prompt, want, n_ids = golden(k)
        # prompt length without BOS, from the server's own count
        _, data = completion(s, prompt, 1)
        n_prompt = json.loads(data)["usage"]["prompt_tokens"] - 1
        max_tokens = 100 - n_prompt
        assert n_ids == 100
        h, data = completion(s, prompt, max_tokens)
        r = json.loads(data)
        assert r["object"] == "text_completion" and r["id"].startswith("cmpl-")
        assert r["model"] == model_id and isinstance(r["created"], int)
        assert len(r["choices"]) == 1
        c = r["choices"][0]
        assert c["index"] == 0 and c["logprobs"] is None
        assert c["text"] == want, "prompt %d: %r != %r" % (k, c["text"], want)
        assert c["finish_reason"] == "length"
        u = r["usage"]
        assert u["completion_tokens"] == max_tokens
        assert u["prompt_tokens"] == n_prompt + 1
        assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]

        h, data = completion(s, prompt, max_tokens, stream=True,
                             stream_options={"include_usage": True})
        assert h["Content-Type"].startswith("text/event-stream")
        assert h.get("Cache-Control") == "no-cache"
        chunks = stream_json(data)
        usage = chunks[-1]
        assert usage["choices"] == [] and usage["usage"] == u
        body = chunks[:-1]
        assert all(ch["usage"] is None for ch in body)
        assert all(ch["id"] == body[0]["id"] and ch["object"] == "text_completion" for ch in body)
        text = "".join(ch["choices"][0]["text"] for ch in body)
        assert text == want
        assert all(ch["choices"][0]["finish_reason"] is None for ch in body[:-1])
        assert body[-1]["choices"][0]["finish_reason"] == "length"
        # without include_usage: no usage key, no usage chunk
        _, data = completion(s, prompt, max_tokens, stream=True)
        chunks = stream_json(data)
        assert all("usage" not in ch for ch in chunks)
        assert "".join(ch["choices"][0]["text"] for ch in chunks) == want


def server_api_stop_string(s):
    """A stop string ends the text just before it with finish_reason "stop",
    streamed and not; the text never contains the stop string."""
    prompt, want, _ = golden(1)
    stop = " girl"
    cut = want[:want.index(stop)]
    _, data = completion(s, prompt, 50, stop=[stop, "zzzz"])
    c = json.loads(data)["choices"][0]
    assert c["text"] == cut and c["finish_reason"] == "stop", c
    _, data = completion(s, prompt, 50, stop=stop, stream=True)
    chunks = stream_json(data)
    text = "".join(ch["choices"][0]["text"] for ch in chunks)
    assert text == cut and stop not in text
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def server_api_n_and_seed(s):
    """n=2 gives two choices indexed 0 and 1; the same seed twice gives the
    same texts; streamed chunks carry their choice's index."""
    body = {"prompt": "Once upon a time", "max_tokens": 20, "temperature": 1.0,
            "n": 2, "seed": 1234}
    st, _, d1 = s.post("/v1/completions", body)
    st2, _, d2 = s.post("/v1/completions", body)
    assert st == 200 and st2 == 200
    r1, r2 = json.loads(d1), json.loads(d2)
    assert [c["index"] for c in r1["choices"]] == [0, 1]
    assert [c["text"] for c in r1["choices"]] == [c["text"] for c in r2["choices"]]
    assert r1["usage"]["completion_tokens"] == 40
    body["stream"] = True
    _, _, d3 = s.post("/v1/completions", body)
    chunks = stream_json(d3)
    texts = ["", ""]
    finals = 0
    for ch in chunks:
        assert len(ch["choices"]) == 1
        c = ch["choices"][0]
        texts[c["index"]] += c["text"]
        finals += c["finish_reason"] is not None
    assert finals == 2
    assert texts == [c["text"] for c in r1["choices"]]


def server_api_logprobs_completions(s):
    """Completions logprobs=3: parallel tokens/token_logprobs/top_logprobs/
    text_offset, one entry per generated token, tokens joining to the text."""
    _, data = completion(s, "Once upon a time", 8, logprobs=3)
    c = json.loads(data)["choices"][0]
    lp = c["logprobs"]
    n = len(lp["tokens"])
    assert n == 8
    for key in ("token_logprobs", "top_logprobs", "text_offset"):
        assert len(lp[key]) == n, key
    assert "".join(lp["tokens"]) == c["text"]
    assert lp["text_offset"][0] == 0
    for t, l, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]):
        assert isinstance(t, str) and l <= 0
        assert 1 <= len(top) <= 3 and all(v <= 0 for v in top.values())
        # greedy: the chosen token is the most likely one
        assert abs(max(top.values()) - l) < 1e-5
    _, data = completion(s, "Once upon a time", 8, logprobs=2, stream=True)
    chunks = stream_json(data)
    toks = [t for ch in chunks if ch["choices"][0]["logprobs"]
            for t in ch["choices"][0]["logprobs"]["tokens"]]
    assert toks == lp["tokens"]


def chat(s, body, stream=False):
    body = dict(body)
    if stream:
        body["stream"] = True
    st, h, data = s.post("/v1/chat/completions", body)
    assert st == 200, (st, data[:300])
    return h, data


def server_api_chat(s, model_id):
    """Chat completions (fallback template) streamed and not: shapes, role
    chunk first, empty final delta with finish_reason, usage chunk, and the
    streamed content equals the non-streamed message."""
    body = {"messages": [{"role": "system", "content": "You tell stories."},
                         {"role": "user", "content": [{"type": "text", "text": "Tell"},
                                                      {"type": "text", "text": "a story"}]}],
            "max_tokens": 30, "temperature": 0, "model": model_id}
    _, data = chat(s, body)
    r = json.loads(data)
    assert r["object"] == "chat.completion" and r["id"].startswith("chatcmpl-")
    assert r["model"] == model_id
    c = r["choices"][0]
    assert c["message"]["role"] == "assistant"
    content = c["message"]["content"]
    assert isinstance(content, str) and content
    assert c["finish_reason"] in ("stop", "length")
    u = r["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert u["completion_tokens"] <= 30
    body["stream_options"] = {"include_usage": True}
    _, data = chat(s, body, stream=True)
    chunks = stream_json(data)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == u
    body_chunks = chunks[:-1]
    assert all(ch["object"] == "chat.completion.chunk" for ch in body_chunks)
    first = body_chunks[0]["choices"][0]
    assert first["delta"] == {"role": "assistant", "content": ""}
    last = body_chunks[-1]["choices"][0]
    assert last["delta"] == {} and last["finish_reason"] == c["finish_reason"]
    mid = body_chunks[1:-1]
    assert all(ch["choices"][0]["finish_reason"] is None for ch in mid)
    assert all(ch["choices"][0]["delta"].get("content") for ch in mid), "no empty deltas"
    assert "".join(ch["choices"][0]["delta"]["content"] for ch in mid) == content
    # max_tokens absent: the rest of the context is allowed; a stop ends it
    _, data = chat(s, {"messages": [{"role": "user", "content": "Hi"}],
                       "temperature": 0, "stop": ["."], "max_completion_tokens": 200})
    c = json.loads(data)["choices"][0]
    assert "." not in c["message"]["content"]


def server_api_chat_logprobs(s):
    """Chat logprobs: content[] entries with token, logprob, bytes and
    top_logprobs (top_logprobs=2), the tokens joining to the message."""
    _, data = chat(s, {"messages": [{"role": "user", "content": "Hi"}],
                       "max_tokens": 6, "temperature": 0,
                       "logprobs": True, "top_logprobs": 2})
    c = json.loads(data)["choices"][0]
    content = c["logprobs"]["content"]
    assert len(content) == 6
    joined = b""
    for e in content:
        assert set(e) == {"token", "logprob", "bytes", "top_logprobs"}
        assert isinstance(e["bytes"], list) and all(0 <= b < 256 for b in e["bytes"])
        joined += bytes(e["bytes"])
        assert len(e["top_logprobs"]) == 2
        for t in e["top_logprobs"]:
            assert set(t) == {"token", "logprob", "bytes"}
    assert joined.decode("utf-8", "replace") == c["message"]["content"]


def server_api_echo(s):
    """Completions echo=true prepends the prompt to the text."""
    _, data = completion(s, "Once upon a time", 5, echo=True)
    _, plain = completion(s, "Once upon a time", 5)
    t = json.loads(data)["choices"][0]["text"]
    assert t == "Once upon a time" + json.loads(plain)["choices"][0]["text"]


def server_api_token_prompt(s):
    """A prompt of token ids gives the same text as the same prompt as a
    string (BOS included explicitly)."""
    _, a = completion(s, "Once upon a time", 10)
    _, b = completion(s, [1, 403, 407, 261, 378], 10)
    assert json.loads(a)["choices"][0]["text"] == json.loads(b)["choices"][0]["text"]


def server_api_concurrent(s):
    """8 concurrent requests with different prompts each get exactly their
    solo answer (the engine batches them)."""
    prompts = ["Once upon a time", "Lily and Tom went to the park", "The little dog",
               "One day, a bird", "Tim had a red ball", "The sun was hot",
               "Mom said", "There was a big tree"]
    solo = {}
    for p in prompts:
        _, data = completion(s, p, 40)
        solo[p] = json.loads(data)["choices"][0]["text"]
    got = {}
    errors = []

    def run(p, stream):
        try:
            _, data = completion(s, p, 40, stream=stream)
            if stream:
                got[p] = "".join(ch["choices"][0]["text"] for ch in stream_json(data))
            else:
                got[p] = json.loads(data)["choices"][0]["text"]
        except Exception as e:  # reported below
            errors.append((p, repr(e)))

    ts = [threading.Thread(target=run, args=(p, i % 2 == 1)) for i, p in enumerate(prompts)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors
    for p in prompts:
        assert got.get(p) == solo[p], (p, got.get(p), solo[p])


def server_api_disconnect_mid_stream(s):
    """A client that drops a stream mid-way does not break the server: a
    new request then succeeds promptly."""
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
        body = json.dumps({"prompt": "Once upon a time", "max_tokens": 1500,
                           "temperature": 1.0, "stream": True, "ignore_eos": True})
        sock.sendall(("POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                      "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                      % (len(body), body)).encode())
        got = b""
        while got.count(b"data: ") < 3:
            chunk = sock.recv(4096)
            assert chunk, "server closed early"
            got += chunk
        assert got.startswith(b"HTTP/1.1 200")
        sock.close()
    # a non-streamed request abandoned before its answer
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    body = json.dumps({"prompt": "Once", "max_tokens": 1500, "ignore_eos": True})
    sock.sendall(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(body), body)).encode())
    time.sleep(0.05)
    sock.close()
    t0 = time.time()
    _, data = completion(s, "Once upon a time", 5)
    assert json.loads(data)["choices"][0]["text"]
    assert time.time() - t0 < 10, "server slow after disconnects"
    st, _, _ = s.request("GET", "/health")
    assert st == 200


def server_api_keepalive(s):
    """Several requests on one keep-alive connection, streamed and not."""
    c = s.conn()
    try:
        for stream in (False, True, False):
            c.request("POST", "/v1/completions",
                      body=json.dumps({"prompt": "Once", "max_tokens": 3, "stream": stream}),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            assert r.status == 200, data
        c.request("GET", "/health")
        r = c.getresponse()
        assert r.status == 200 and json.loads(r.read()) == {"status": "ok"}
    finally:
        c.close()


def main():
    if not os.path.exists(MODEL):
        print("skipped: %s not found" % MODEL)
        return 0
    s = Server()
    failures = 0
    try:
        model_id = server_api_health_and_models(s)
        cases = [
            (server_api_golden_completions, (s, model_id)),
            (server_api_stop_string, (s,)),
            (server_api_n_and_seed, (s,)),
            (server_api_logprobs_completions, (s,)),
            (server_api_chat, (s, model_id)),
            (server_api_chat_logprobs, (s,)),
            (server_api_echo, (s,)),
            (server_api_token_prompt, (s,)),
            (server_api_keepalive, (s,)),
            (server_api_concurrent, (s,)),
            (server_api_disconnect_mid_stream, (s,)),
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
                print("FAIL %s: %r" % (fn.__name__, e))
            if s.proc.poll() is not None:
                print("FAIL server died (exit %s): %s" % (s.proc.returncode, s.proc.stderr.read()))
                return 1
    finally:
        complaint = s.stop()
    if complaint:
        print("FAIL sanitizer:\n" + complaint[-6000:])
        failures += 1
    # SIGTERM stops it cleanly
    if s.proc.returncode not in (0,):
        print("FAIL server exit status after SIGTERM: %s" % s.proc.returncode)
        failures += 1
    print("%d failure(s)" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
