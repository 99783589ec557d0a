"""test_server_auth.py: the API key of `hotpath serve` (--api-key KEY or
HOTPATH_API_KEY), as a client sees it (stdlib only).

Starts its own servers on free loopback ports (--port 0, port read from the
listening line) with the real stories260K model and always stops them.
Without a key everything is open, as before. With one, every request but
GET/HEAD /health and /metrics needs `Authorization: Bearer KEY`; anything
else is a 401 in OpenAI's error shape with `WWW-Authenticate: Bearer`,
answered before the body is parsed. The key never reaches the logs. The
cases that need a model are skipped (exit 0) when it is absent.

Cases are named server_auth_<behaviour>; each states the behaviour it checks.
"""
import base64
import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time

SHARED = os.environ.get("HOTPATH_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
BIN = os.environ.get("HOTPATH_BIN", "hotpath")
MODEL = os.path.join(SHARED, "models", "stories260K.gguf")

# distinctive, so finding it in a log cannot be a coincidence
KEY = "sk-hp-flag-" + secrets.token_hex(12)
ENV_KEY = "sk-hp-env-" + secrets.token_hex(12)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "HOTPATH_API_KEY"}
    env.update(extra)
    return env


class Server:
    """A `hotpath serve` child on a free port; stop() always kills it and
    keeps everything it printed in self.output."""

    def __init__(self, *extra, env=None):
        self.output = ""
        self.proc = subprocess.Popen(
            [BIN, "serve", "-m", MODEL, "--port", "0", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env if env is not None else clean_env())
        line = self._readline(timeout=30)
        if not line.startswith("hotpath: serving "):
            self.stop()
            raise RuntimeError("no listening line, got %r: %s" % (line, self.output))
        self.line = line
        self.port = int(line.rsplit(":", 1)[1])

    def _readline(self, timeout):
        out = []
        t = threading.Thread(target=lambda: out.append(self.proc.stdout.readline()))
        t.daemon = True
        t.start()
        t.join(timeout)
        return out[0].strip() if out else ""

    def request(self, method, path, body=None, headers=None, timeout=60):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if body is not None and not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            h = {"Content-Type": "application/json"} if body is not None else {}
            h.update(headers or {})
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, r.reason, dict(r.getheaders()), data
        finally:
            c.close()

    def raw(self, text):
        """Send text as is; return the whole reply (the server closes)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as so:
            so.sendall(text.encode())
            got = b""
            while True:
                chunk = so.recv(65536)
                if not chunk:
                    break
                got += chunk
                if b"\r\n\r\n" in got:
                    head, _, rest = got.partition(b"\r\n\r\n")
                    n = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                    if n and len(rest) >= int(n[0].split(b":")[1]):
                        break
            return got.decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.output += self.proc.stdout.read() + self.proc.stderr.read()


def bearer(k):
    return {"Authorization": "Bearer " + k}


COMPLETION = {"prompt": "Once upon a time", "max_tokens": 4, "temperature": 0}
CHAT = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4,
        "temperature": 0}


def assert_401(st, reason, h, data, message_start):
    """The 401 is OpenAI's invalid_api_key error with the challenge header."""
    assert st == 401, (st, data[:200])
    assert reason == "Unauthorized", reason
    assert h.get("WWW-Authenticate") == "Bearer", h
    assert h["Content-Type"].startswith("application/json"), h
    e = json.loads(data)
    assert set(e) == {"error"}, e
    e = e["error"]
    assert e["type"] == "invalid_request_error" and e["param"] is None, e
    assert e["code"] == "invalid_api_key", e
    assert e["message"].startswith(message_start), e
    assert KEY not in data.decode() and ENV_KEY not in data.decode()


# ---- cases: no key ------------------------------------------------------------

def server_auth_off_everything_open(s):
    """Without a key every endpoint answers as before, with or without an
    Authorization header (which is ignored)."""
    for hdr in ({}, bearer("whatever"), {"Authorization": "Basic eDp5"}):
        st, _, _, data = s.request("POST", "/v1/completions", COMPLETION, hdr)
        assert st == 200, (hdr, st, data[:200])
        st, _, _, data = s.request("POST", "/v1/chat/completions", CHAT, hdr)
        assert st == 200, (hdr, st, data[:200])
        for path in ("/v1/models", "/health", "/metrics"):
            st, _, h, _ = s.request("GET", path, headers=hdr)
            assert st == 200 and "WWW-Authenticate" not in h, (path, st)


# ---- cases: --api-key ---------------------------------------------------------

def server_auth_missing_key_401(s):
    """No Authorization header: 401 "Missing API key" on every API path,
    streamed or not, and on unknown paths too (no route is revealed)."""
    for method, path, body in (("POST", "/v1/completions", COMPLETION),
                               ("POST", "/v1/chat/completions", CHAT),
                               ("POST", "/completions", dict(COMPLETION, stream=True)),
                               ("GET", "/v1/models", None),
                               ("GET", "/v1/models/x", None),
                               ("GET", "/v1/nowhere", None),
                               ("POST", "/health", {})):
        st, reason, h, data = s.request(method, path, body)
        assert_401(st, reason, h, data, "Missing API key")


def server_auth_wrong_key_401(s):
    """A wrong Bearer token, the key's prefix, the key plus a suffix, or an
    empty token: 401; the message names no key."""
    for tok in ("nope", KEY[:-1], KEY + "x", KEY.upper(), ENV_KEY):
        st, reason, h, data = s.request("POST", "/v1/completions", COMPLETION, bearer(tok))
        assert_401(st, reason, h, data, "Incorrect API key provided")
    st, reason, h, data = s.request("GET", "/v1/models", headers={"Authorization": "Bearer"})
    assert_401(st, reason, h, data, "Missing API key")


def server_auth_other_scheme_401(s):
    """Basic auth (even carrying the key as its password) or a bare key
    without a scheme: 401 asking for a Bearer token."""
    basic = base64.b64encode(("user:" + KEY).encode()).decode()
    for v in ("Basic " + basic, KEY, "Token " + KEY):
        st, reason, h, data = s.request("GET", "/v1/models", headers={"Authorization": v})
        assert_401(st, reason, h, data, "Missing API key")


def server_auth_checked_before_body(s):
    """Without the key, a malformed body is a 401, not a 400: the body is
    never parsed for an unauthorised client."""
    st, reason, h, data = s.request("POST", "/v1/completions", "{not json")
    assert_401(st, reason, h, data, "Missing API key")
    st, _, _, data = s.request("POST", "/v1/completions", "{not json", bearer(KEY))
    assert st == 400, (st, data[:200])


def server_auth_right_key_200(s):
    """The right key opens completions (plain and streamed), chat, models
    and models/{id}; the scheme is case-insensitive."""
    st, _, _, data = s.request("POST", "/v1/completions", COMPLETION, bearer(KEY))
    assert st == 200 and json.loads(data)["choices"][0]["text"], (st, data[:200])
    st, _, h, data = s.request("POST", "/v1/completions", dict(COMPLETION, stream=True),
                               bearer(KEY))
    assert st == 200 and h["Content-Type"].startswith("text/event-stream")
    assert data.decode().rstrip().endswith("data: [DONE]")
    st, _, _, data = s.request("POST", "/v1/chat/completions", CHAT, bearer(KEY))
    assert st == 200 and json.loads(data)["object"] == "chat.completion", data[:200]
    st, _, _, data = s.request("GET", "/v1/models", headers=bearer(KEY))
    assert st == 200, (st, data[:200])
    mid = json.loads(data)["data"][0]["id"]
    st, _, _, data = s.request("GET", "/v1/models/" + mid, headers=bearer(KEY))
    assert st == 200 and json.loads(data)["id"] == mid
    st, _, _, _ = s.request("GET", "/v1/models", headers={"Authorization": "bearer " + KEY})
    assert st == 200
    st, _, _, _ = s.request("GET", "/v1/nowhere", headers=bearer(KEY))
    assert st == 404  # with the key, routing is as before


def server_auth_two_headers_401(s):
    """Two Authorization headers, even if one is right: 401 (no guessing
    which one counts)."""
    reply = s.raw("GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  "Authorization: Bearer %s\r\nAuthorization: Bearer nope\r\n\r\n" % KEY)
    assert reply.startswith("HTTP/1.1 401 Unauthorized\r\n"), reply[:200]
    assert "WWW-Authenticate: Bearer\r\n" in reply


def server_auth_probes_open(s):
    """GET and HEAD /health and /metrics (with or without /v1) need no key:
    probes and Prometheus scrapers carry none. A wrong key there is
    ignored too."""
    for method in ("GET", "HEAD"):
        for path in ("/health", "/metrics", "/v1/health", "/v1/metrics", "/health/"):
            for hdr in ({}, bearer("nope")):
                st, _, h, data = s.request(method, path, headers=hdr)
                assert st == 200 and "WWW-Authenticate" not in h, (method, path, st, data[:200])
    st, _, _, data = s.request("GET", "/health")
    assert json.loads(data) == {"status": "ok"}


def server_auth_401_counted(s):
    """401s count in hotpath_http_responses_total like other API replies."""
    _, _, _, data = s.request("GET", "/metrics")
    assert 'status="401"' in data.decode(), data.decode()[-2000:]


def server_auth_env_var(cases_out):
    """HOTPATH_API_KEY sets the key when --api-key is absent; the flag wins
    over it when both are given."""
    s = Server(env=clean_env(HOTPATH_API_KEY=ENV_KEY))
    try:
        st, reason, h, data = s.request("GET", "/v1/models")
        assert_401(st, reason, h, data, "Missing API key")
        st, _, _, _ = s.request("GET", "/v1/models", headers=bearer(ENV_KEY))
        assert st == 200
        st, _, _, _ = s.request("POST", "/v1/completions", COMPLETION, bearer(ENV_KEY))
        assert st == 200
    finally:
        s.stop()
        cases_out.append(s.output)
    s = Server("--api-key", KEY, env=clean_env(HOTPATH_API_KEY=ENV_KEY))
    try:
        st, _, _, _ = s.request("GET", "/v1/models", headers=bearer(KEY))
        assert st == 200
        st, reason, h, data = s.request("GET", "/v1/models", headers=bearer(ENV_KEY))
        assert_401(st, reason, h, data, "Incorrect API key provided")
    finally:
        s.stop()
        cases_out.append(s.output)


def server_auth_empty_key_refused():
    """An empty --api-key, or a set but empty HOTPATH_API_KEY, exits 2
    before loading anything; --api-key without a value too."""
    for args, env in ((["--api-key", ""], clean_env()),
                      (["--api-key="], clean_env()),
                      ([], clean_env(HOTPATH_API_KEY="")),
                      (["--api-key"], clean_env())):
        p = subprocess.run([BIN, "serve", "-m", MODEL, "--port", "0", *args],
                           capture_output=True, text=True, env=env, timeout=30)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert "api" in p.stderr.lower() or "API" in p.stderr, p.stderr


def server_auth_help_lists_key():
    """`hotpath serve --help` lists --api-key and HOTPATH_API_KEY."""
    p = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0
    assert "--api-key KEY" in p.stdout and "HOTPATH_API_KEY" in p.stdout, p.stdout


def run(cases):
    failures = 0
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
    return failures


def main():
    failures = run([(server_auth_help_lists_key, ()),
                    (server_auth_empty_key_refused, ())])
    if not os.path.exists(MODEL):
        print("skipped: %s not found" % MODEL)
        print("%d failure(s)" % failures)
        return 1 if failures else 0
    outputs = []
    s = Server()
    try:
        failures += run([(server_auth_off_everything_open, (s,))])
    finally:
        s.stop()
    s = Server("--api-key", KEY)
    try:
        failures += run([
            (server_auth_missing_key_401, (s,)),
            (server_auth_wrong_key_401, (s,)),
            (server_auth_other_scheme_401, (s,)),
            (server_auth_checked_before_body, (s,)),
            (server_auth_right_key_200, (s,)),
            (server_auth_two_headers_401, (s,)),
            (server_auth_probes_open, (s,)),
            (server_auth_401_counted, (s,)),
        ])
        if s.proc.poll() is not None:
            print("FAIL server died (exit %s)" % s.proc.returncode)
            failures += 1
    finally:
        s.stop()
        outputs.append(s.output)
    failures += run([(server_auth_env_var, (outputs,))])
    # server_auth_key_never_logged: neither key appears in anything a
    # server printed (stdout or stderr), though both were sent right and
    # wrong, as prefixes and in Basic credentials
    leaked = [o for o in outputs if KEY in o or ENV_KEY in o or KEY[:-1] in o]
    if leaked:
        print("FAIL server_auth_key_never_logged: %r" % leaked[0][-2000:])
        failures += 1
    else:
        print("ok   server_auth_key_never_logged")
    if s.proc.returncode != 0:
        print("FAIL server exit status after SIGTERM: %s" % s.proc.returncode)
        failures += 1
    print("%d failure(s)" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
