#!/usr/bin/env bash
# bench_gateway.sh: what the hotpath gateway adds to a request's latency,
# side by side with a direct call, Portkey's open-source gateway and an
# nginx proxy_pass floor, all in front of the same mock upstream (mocklab,
# 20 ms to first byte, 8-word non-streamed chat completions). Results and
# the exact commands are in docs/BENCHMARKS.md ("Gateway overhead").
#
#   scripts/bench_gateway.sh --hotpath build/hotpath --mocklab build/mocklab \
#       [--portkey DIR] [--rates "500 2000"] [--rounds 3] [--duration 10]
#       [--warmup 2] [--conns 256] [--port-base 18200] [--no-pin] [--keep DIR]
#
# --portkey DIR is a folder where `npm install @portkey-ai/gateway` ran;
# without it the Portkey path is skipped. Paths run interleaved (the order
# rotates every round) so a noisy neighbour hurts them alike; each cell is
# the median over rounds, and "added" is the median over rounds of the
# path's figure minus the direct figure of the same round and rate.
#
# Needs wrk, nginx and node on PATH. It installs and builds nothing: it
# prints how to install what is missing and exits 2. It is not a test (it
# takes minutes and its numbers depend on the machine). Load goes only to
# 127.0.0.1, at a bounded rate for a bounded time.
set -euo pipefail

hotpath="" mocklab="" portkey="" rates="500 2000" rounds=3 duration=10
warmup=2 conns=256 base=18200 pin=1 keep=""
usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --hotpath) hotpath=$2; shift 2 ;;
    --mocklab) mocklab=$2; shift 2 ;;
    --portkey) portkey=$2; shift 2 ;;
    --rates) rates=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --conns) conns=$2; shift 2 ;;
    --port-base) base=$2; shift 2 ;;
    --no-pin) pin=0; shift ;;
    --keep) keep=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "bench_gateway: unknown option $1" >&2; usage ;;
  esac
done
[ -x "$hotpath" ] && [ -x "$mocklab" ] || {
  echo "bench_gateway: --hotpath and --mocklab must name built executables" >&2
  usage
}
missing=0
for t in wrk nginx python3; do
  command -v $t >/dev/null || { echo "bench_gateway: $t not found" >&2; missing=1; }
done
if [ -n "$portkey" ]; then
  command -v node >/dev/null || { echo "bench_gateway: node not found" >&2; missing=1; }
  pk_js=$portkey/node_modules/@portkey-ai/gateway/build/start-server.js
  [ -f "$pk_js" ] || { echo "bench_gateway: no $pk_js" >&2; missing=1; }
fi
if [ $missing = 1 ]; then
  cat >&2 <<'EOF'
install (outside the repository; nothing of them is committed):
  apt-get install -y wrk nginx nodejs npm
  mkdir -p /work/peer/portkey && cd /work/peer/portkey && npm init -y && npm install @portkey-ai/gateway
EOF
  exit 2
fi

p_mock=$base p_gw=$((base + 1)) p_pk=$((base + 2)) p_ng=$((base + 3))
tmp=$(mktemp -d /tmp/bench_gateway.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$keep" ]; then mkdir -p "$keep" && cp -r "$tmp"/. "$keep"/; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# Load generator on CPU 0, every server on CPU 1, so the client never
# steals cycles from what it measures (2-core machines).
load_cpu=() srv_cpu=()
if [ $pin = 1 ] && [ "$(nproc)" -ge 2 ]; then
  load_cpu=(taskset -c 0) srv_cpu=(taskset -c 1)
fi

wait_port() { # PORT: until something accepts there (10 s at most)
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench_gateway: nothing listens on port $1; logs in $tmp" >&2
  exit 1
}
ticks() { # PID: user+system CPU time in clock ticks
  awk '{print $14 + $15}' /proc/"$1"/stat
}
rss() { # PID: "VmRSS VmHWM" in kB
  awk '/^VmRSS/{r=$2} /^VmHWM/{h=$2} END{print r, h}' /proc/"$1"/status
}

# (a) the mock upstream.
"${srv_cpu[@]}" "$mocklab" --port $p_mock --ttft-ms 20 --tokens 8 --quiet \
  >"$tmp/mock.log" 2>&1 &
mock_pid=$!
pids+=($mock_pid)
wait_port $p_mock

# (b) hotpath: one openai upstream, one route, no cache, no keys.
cat >"$tmp/gateway.yaml" <<EOF
listen: {host: 127.0.0.1, port: $p_gw}
upstreams:
  - {name: mock, kind: openai, base_url: "http://127.0.0.1:$p_mock/v1"}
routes:
  - model: m
    targets: [{upstream: mock, model: m}]
database: $tmp/gateway.db
auth: {require_keys: false}
EOF
"${srv_cpu[@]}" "$hotpath" serve --config "$tmp/gateway.yaml" >"$tmp/gateway.log" 2>&1 &
gw_pid=$!
pids+=($gw_pid)
wait_port $p_gw
sleep 0.5
read -r gw_rss_idle gw_hwm_idle <<<"$(rss $gw_pid)"

# (c) Portkey, offline, headless; the provider and custom host go in
# headers of every request (x-portkey-provider, x-portkey-custom-host).
pk_pid=""
if [ -n "$portkey" ]; then
  (cd "$portkey" && NODE_ENV=production exec "${srv_cpu[@]}" node "$pk_js" \
     --port=$p_pk --headless) >"$tmp/portkey.log" 2>&1 &
  pk_pid=$!
  pids+=($pk_pid)
  wait_port $p_pk
fi

# (d) nginx: one worker, upstream keepalive, no access log, foreground.
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx;
  proxy_temp_path $tmp/nginx;
  upstream mock { server 127.0.0.1:$p_mock; keepalive 512; }
  server {
    listen 127.0.0.1:$p_ng;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
"${srv_cpu[@]}" nginx -c "$tmp/nginx.conf" -e "$tmp/nginx/error.log" \
  >"$tmp/nginx.log" 2>&1 &
pids+=($!)
wait_port $p_ng
ng_worker=$(pgrep -P "$(cat "$tmp/nginx/nginx.pid")" | head -1)

# wrk paces requests with a per-thread schedule (wrk itself is closed
# loop): delay() hands each send the next slot, so with enough idle
# connections the arrival rate is fixed whatever the latency. A send that
# finds its slot past goes at once (catch-up), as in wrk2.
cat >"$tmp/pace.lua" <<'EOF'
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bgw_timespec;
int clock_gettime(int clk, bgw_timespec *tp);
]]
local ts = ffi.new("bgw_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"m","messages":[{"role":"user","content":"Say hello in eight words."}],"max_tokens":8}'
local interval, next_due
function init(args)
  interval = 1000.0 * (tonumber(args[2]) or 1) / (tonumber(args[1]) or 500)
end
function delay()
  local t = now_ms()
  next_due = next_due or t
  local d = next_due - t
  next_due = next_due + interval
  if d <= 0 then return 0 end
  return math.floor(d + 0.5)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + e.status))
end
EOF

paths=(direct hotpath nginx)
[ -n "$pk_pid" ] && paths=(direct hotpath portkey nginx)
url_of() {
  case $1 in
    direct) echo "http://127.0.0.1:$p_mock/v1/chat/completions" ;;
    hotpath) echo "http://127.0.0.1:$p_gw/v1/chat/completions" ;;
    portkey) echo "http://127.0.0.1:$p_pk/v1/chat/completions" ;;
    nginx) echo "http://127.0.0.1:$p_ng/v1/chat/completions" ;;
  esac
}
pid_of() { # PATH: the process whose CPU time the path adds (the mock's for direct)
  case $1 in
    direct) echo $mock_pid ;; hotpath) echo $gw_pid ;;
    portkey) echo $pk_pid ;; nginx) echo $ng_worker ;;
  esac
}
one() { # PATH RATE SECONDS: prints "requests duration_us p50_us p99_us errors"
  local hdr=()
  if [ "$1" = portkey ]; then
    hdr=(-H "x-portkey-provider: openai"
         -H "x-portkey-custom-host: http://127.0.0.1:$p_mock/v1"
         -H "Authorization: Bearer sk-bench")
  fi
  "${load_cpu[@]}" wrk -t1 -c"$conns" -d"${3}s" --timeout 5s "${hdr[@]}" \
    -s "$tmp/pace.lua" "$(url_of "$1")" -- "$2" 1 | awk '/^RESULT/{print $2, $3, $4, $5, $6}'
}

echo "bench_gateway: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)," \
     "paths: ${paths[*]}, rates: $rates, $rounds rounds of ${duration}s" \
     "(+${warmup}s warm-up), $conns connections, pinned: $pin" >&2
echo "round rate path requests duration_us p50_us p99_us errors cpu_ticks" >"$tmp/raw.txt"
n=${#paths[@]}
for ((r = 0; r < rounds; r++)); do
  for rate in $rates; do
    for ((i = 0; i < n; i++)); do
      p=${paths[$(((i + r) % n))]}
      one "$p" "$rate" "$warmup" >/dev/null
      t0=$(ticks "$(pid_of "$p")")
      res=$(one "$p" "$rate" "$duration")
      t1=$(ticks "$(pid_of "$p")")
      echo "$r $rate $p ${res:-0 1 0 0 0} $((t1 - t0))" | tee -a "$tmp/raw.txt" >&2
      sleep 1 # let a slow path drain before the next one starts
    done
  done
done
read -r gw_rss_after gw_hwm_after <<<"$(rss $gw_pid)"

echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "hotpath gateway RSS: idle ${gw_rss_idle} kB (HWM ${gw_hwm_idle} kB);" \
     "after the run ${gw_rss_after} kB (HWM ${gw_hwm_after} kB)"
if [ -n "$pk_pid" ]; then
  echo "portkey (node) RSS after the run: $(rss $pk_pid | awk '{print $1 " kB (HWM " $2 " kB)"}')"
fi
echo "nginx worker RSS after the run: $(rss "$ng_worker" | awk '{print $1 " kB"}')"
echo
python3 - "$tmp/raw.txt" "$(getconf CLK_TCK)" <<'EOF'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
cell = {}
hz = int(sys.argv[2])
for r, rate, p, req, dur, p50, p99, err, tk in rows:
    cell[(int(r), int(rate), p)] = (int(req), int(dur), int(p50), int(p99), int(err), int(tk))
rates = sorted({k[1] for k in cell})
order = [p for p in ("direct", "hotpath", "portkey", "nginx") if any(k[2] == p for k in cell)]
rounds = sorted({k[0] for k in cell})
med = lambda xs: st.median(xs) if xs else float("nan")
print("| rate | path | P50 ms | P99 ms | added P50 ms | added P99 ms | errors | achieved req/s | CPU us/req |")
print("|---|---|---|---|---|---|---|---|---|")
added = {}
for rate in rates:
    for p in order:
        c = [cell[(r, rate, p)] for r in rounds if (r, rate, p) in cell]
        d = [cell[(r, rate, "direct")] for r in rounds if (r, rate, p) in cell]
        a50 = med([x[2] - y[2] for x, y in zip(c, d)]) / 1e3
        a99 = med([x[3] - y[3] for x, y in zip(c, d)]) / 1e3
        added[(rate, p)] = (a50, a99)
        ach = med([x[0] / (x[1] / 1e6) for x in c if x[1] > 0])
        print(f"| {rate} | {p} | {med([x[2] for x in c])/1e3:.2f} | {med([x[3] for x in c])/1e3:.2f} | "
              + ("-" if p == "direct" else f"{a50:+.2f}") + " | "
              + ("-" if p == "direct" else f"{a99:+.2f}") + f" | {sum(x[4] for x in c)} | {ach:.0f} | "
              + f"{med([x[5] / hz * 1e6 / x[0] for x in c if x[0]]):.0f} |")
print()
for rate in rates:
    h = added.get((rate, "hotpath"))
    k = added.get((rate, "portkey"))
    if h and k and k[1] > 0:
        print(f"{rate} req/s: hotpath added P99 / Portkey added P99 = {h[1]/k[1]:.3f};"
              f" added P50 ratio = {h[0]/k[0]:.3f}" if k[0] > 0 else "")
EOF
