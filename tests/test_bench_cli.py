#!/usr/bin/env python3
"""test_bench_cli.py: `hotpath bench` against the mock server (tests/tools/mockoai).

Spec, case by case (bench-N):
  bench-1  streamed closed loop: JSON has every key, counts match, TTFT p50
           is >= the mock's first-token delay and < 200 ms, ITL p50 is near
           the mock's per-token delay, output tokens come from usage.
  bench-2  non-streamed: TTFT == E2E (nothing earlier to measure).
  bench-3  open loop (--rate) with a shared prefix on the chat endpoint.
  bench-4  --fail-every N on the mock: errors counted, run still exits 0.
  bench-5  goodput obeys --slo-ttft (an impossible SLO gives 0).
  bench-6  every failed request (all 500) exits 1.
  bench-7  unreachable URL exits 1 and names the URL.
  bench-8  bad arguments exit 2 with a message; --help lists every flag.
Only 127.0.0.1 is contacted. Everything started here is stopped at the end.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile

BIN = os.environ.get("HOTPATH_BIN")
TOOLS = os.environ.get("HOTPATH_TOOLS")
if not BIN or not TOOLS:
    print("skipped: HOTPATH_BIN / HOTPATH_TOOLS not set")
    sys.exit(0)
MOCK = os.path.join(TOOLS, "mockoai")

# No proxy may redirect loopback traffic.
ENV = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}

failures = []
procs = []


def check(name, cond, detail=""):
    if cond:
        print(f"ok   {name}")
    else:
        print(f"FAIL {name} {detail}")
        failures.append(name)


def start_mock(*args):
    p = subprocess.Popen([MOCK, "--port", "0", "--quiet", *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=ENV)
    procs.append(p)
    line = p.stdout.readline().strip()
    assert line.startswith("listening on 127.0.0.1:"), line
    return "http://" + line.split()[-1]


def bench(*args, timeout=60):
    return subprocess.run([BIN, "bench", *args], capture_output=True,
                          text=True, timeout=timeout, env=ENV)


def run_json(url, *args):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "r.json")
        r = bench("--url", url, "--model", "mock", "--json", path, *args)
        data = None
        if os.path.exists(path):
            with open(path) as f:
                data = json.load(f)
        return r, data


KEYS = ["requests", "errors", "duration_s", "request_throughput",
        "output_throughput", "goodput", "ttft_ms", "itl_ms", "tpot_ms",
        "e2e_ms", "config"]
STAT = ["mean", "p50", "p95", "p99"]

try:
    # bench-1: streamed, closed loop.
    url = start_mock("--ttft-ms", "20", "--itl-ms", "5")
    r, j = run_json(url, "--concurrency", "4", "--requests", "24",
                    "--prompt-tokens", "32", "--max-tokens", "8", "--stream")
    check("bench-1.1 exit 0", r.returncode == 0, r.stderr)
    check("bench-1.2 json written", j is not None)
    j = j or {}
    check("bench-1.3 keys", all(k in j for k in KEYS),
          [k for k in KEYS if k not in j])
    check("bench-1.4 stat keys", all(
        isinstance(j.get(k), dict) and all(s in j[k] for s in STAT)
        for k in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms")))
    check("bench-1.5 counts", j.get("requests") == 24 and j.get("errors") == 0
          and j.get("completed") == 24, j)
    ttft = (j.get("ttft_ms") or {}).get("p50") or 0
    check("bench-1.6 ttft p50 in [20, 200) ms", 20 <= ttft < 200, ttft)
    itl = (j.get("itl_ms") or {}).get("p50") or 0
    check("bench-1.7 itl p50 in [4, 50) ms", 4 <= itl < 50, itl)
    e2e = (j.get("e2e_ms") or {}).get("p50") or 0
    check("bench-1.8 e2e p50 >= ttft + 7 * itl", e2e >= 20 + 7 * 5 - 1, e2e)
    check("bench-1.9 output tokens from usage", j.get("output_tokens") == 24 * 8)
    check("bench-1.10 input tokens from usage",
          j.get("input_tokens") == 24 * 32, j.get("input_tokens"))
    check("bench-1.11 throughput plausible",
          0 < j.get("request_throughput", 0) < 1000
          and abs(j.get("output_throughput", 0) - 8 * j.get("request_throughput", 0)) < 1e-6 * 8 * 1000
          and abs(j.get("goodput", -1) - j.get("request_throughput", 0)) < 1e-9)
    check("bench-1.12 config recorded", (j.get("config") or {}).get("concurrency") == 4
          and j["config"].get("stream") is True and j["config"].get("max_tokens") == 8)
    check("bench-1.13 table on stdout", "TTFT" in r.stdout and "E2E" in r.stdout
          and "ITL" in r.stdout and "TPOT" in r.stdout, r.stdout)

    # bench-2: non-streamed.
    r, j = run_json(url, "--concurrency", "2", "--requests", "6",
                    "--max-tokens", "4")
    j = j or {}
    check("bench-2.1 exit 0", r.returncode == 0, r.stderr)
    check("bench-2.2 ttft == e2e", j.get("ttft_ms", {}).get("p50") == j.get("e2e_ms", {}).get("p50"))
    check("bench-2.3 e2e >= ttft + 3 itl", (j.get("e2e_ms", {}).get("p50") or 0) >= 34, j.get("e2e_ms"))
    check("bench-2.4 output tokens", j.get("output_tokens") == 24)

    # bench-3: open loop, chat, shared prefix.
    r, j = run_json(url, "--rate", "40", "--requests", "20", "--max-tokens", "4",
                    "--prompt-tokens", "64", "--shared-prefix", "48",
                    "--endpoint", "chat", "--stream", "--seed", "7")
    j = j or {}
    check("bench-3.1 exit 0", r.returncode == 0, r.stderr)
    check("bench-3.2 counts", j.get("requests") == 20 and j.get("errors") == 0, j)
    check("bench-3.3 rate recorded", (j.get("config") or {}).get("rate") == 40)
    # 20 Poisson arrivals at 40/s take about 0.5 s; far from 0 or 10 s.
    check("bench-3.4 open-loop duration plausible", 0.1 < j.get("duration_s", 0) < 5,
          j.get("duration_s"))
    check("bench-3.5 prompt length", j.get("input_tokens") == 20 * 64, j.get("input_tokens"))

    # bench-5: goodput with an SLO nobody meets, and one everybody meets.
    r, j = run_json(url, "--concurrency", "2", "--requests", "4", "--max-tokens", "2",
                    "--stream", "--slo-ttft", "1")
    check("bench-5.1 impossible SLO: goodput 0", r.returncode == 0 and j and j["goodput"] == 0, j)
    r, j = run_json(url, "--concurrency", "2", "--requests", "4", "--max-tokens", "2",
                    "--stream", "--slo-ttft", "5000", "--slo-itl", "5000")
    check("bench-5.2 easy SLO: goodput == throughput", r.returncode == 0 and j
          and abs(j["goodput"] - j["request_throughput"]) < 1e-9, j)

    # bench-4: errors counted, run goes on.
    url4 = start_mock("--fail-every", "3")
    r, j = run_json(url4, "--concurrency", "3", "--requests", "30", "--max-tokens", "3",
                    "--stream")
    j = j or {}
    check("bench-4.1 exit 0 with some errors", r.returncode == 0, r.stderr)
    check("bench-4.2 10 errors of 30", j.get("errors") == 10 and j.get("requests") == 30
          and j.get("completed") == 20, j)
    check("bench-4.3 first error reported", "500" in r.stderr, r.stderr)

    # bench-6: nothing succeeds.
    url6 = start_mock("--fail-every", "1")
    r = bench("--url", url6, "--model", "m", "--requests", "3")
    check("bench-6.1 all failed: exit 1", r.returncode == 1, r.returncode)
    check("bench-6.2 says so", "succeeded" in r.stderr, r.stderr)

    # bench-7: unreachable. Bind a port and close it so nothing listens.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    dead_url = f"http://127.0.0.1:{dead}"
    r = bench("--url", dead_url, "--model", "m", "--requests", "3")
    check("bench-7.1 unreachable: exit 1", r.returncode == 1, r.returncode)
    check("bench-7.2 message names the URL", dead_url in r.stderr, r.stderr)

    # bench-8: bad arguments.
    base = ["--url", url, "--model", "m"]
    bad = [
        [],
        ["--url", url],
        ["--model", "m"],
        base + ["--concurrency", "0"],
        base + ["--concurrency", "x"],
        base + ["--rate", "0"],
        base + ["--rate", "-1"],
        base + ["--rate", "2", "--concurrency", "2"],
        base + ["--requests", "0"],
        base + ["--requests", "1e3"],
        base + ["--max-tokens", "0"],
        base + ["--prompt-tokens", "-1"],
        base + ["--prompt-tokens", "4", "--shared-prefix", "5"],
        base + ["--endpoint", "embeddings"],
        base + ["--slo-ttft", "0"],
        base + ["--slo-itl", "10"],
        base + ["--timeout", "0"],
        base + ["--seed", "-3"],
        base + ["--bogus"],
        base + ["extra"],
        base + ["--json"],
        ["--url", "ftp://x", "--model", "m"],
        base + ["--json", "/nonexistent-dir/x.json"],
    ]
    for i, args in enumerate(bad):
        r = bench(*args)
        check(f"bench-8.{i + 1} {' '.join(args[4:] if args[:4] == base else args)}: exit 2",
              r.returncode == 2 and r.stderr.strip() != "", (r.returncode, r.stderr))
    r = bench("--help")
    flags = ["--url", "--model", "--concurrency", "--rate", "--requests",
             "--prompt-tokens", "--max-tokens", "--shared-prefix", "--stream",
             "--endpoint", "--slo-ttft", "--slo-itl", "--json", "--seed",
             "--timeout", "--api-key"]
    check("bench-8.help lists every flag", r.returncode == 0 and
          all(f in r.stdout for f in flags), [f for f in flags if f not in r.stdout])
finally:
    for p in procs:
        p.terminate()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()

if failures:
    print(f"{len(failures)} failed: {failures}")
    sys.exit(1)
print("all passed")
