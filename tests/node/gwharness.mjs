// gwharness.mjs: process and config helpers for the gateway's node tests
// (gateway.test.mjs, gateway_keys.test.mjs).
//
// Starts mocklab upstreams, `hotpath serve --config` gateways and plain
// `hotpath serve -m` runtimes on free loopback ports (port 0, parsed from
// each program's listening line), writes configs and databases into one
// temp folder per process, and kills every process it started in
// stopAll() (also on process exit, so a failed test leaves nothing behind).
// Configs are written as JSON, which the YAML loader reads as flow style.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.HOTPATH_BIN || 'hotpath';
export const TOOLS = process.env.HOTPATH_TOOLS || path.join(here, '..', '..', 'build');
export const SHARED = process.env.HOTPATH_SHARED || path.join(here, '..', '..', '..', 'shared');
export const MODEL = path.join(SHARED, 'models', 'stories260K.gguf');
export const MOCKLAB = path.join(TOOLS, 'mocklab');

/* Why the gateway tests cannot run here, or false. */
export function skipReason() {
  if (!existsSync(MOCKLAB)) return `mocklab not found at ${MOCKLAB} (HOTPATH_TOOLS)`;
  return false;
}

const procs = new Set();   // live children
const dirs = new Set();    // temp folders to remove

function killAll(sig) {
  for (const p of procs) {
    try { p.kill(sig); } catch { /* already gone */ }
  }
}
process.on('exit', () => {
  killAll('SIGKILL');
  for (const d of dirs) {
    try { rmSync(d, { recursive: true, force: true }); } catch { /* ignore */ }
  }
});

/* A fresh temp folder, removed by stopAll / at exit. */
export function tempDir(tag = 'gw') {
  const d = mkdtempSync(path.join(os.tmpdir(), `hotpath-${tag}-`));
  dirs.add(d);
  return d;
}

/* Spawn cmd and wait for a stdout line matching re; resolves with
 * {proc, match, stderr()}. Rejects if the process exits first or after
 * timeoutMs. */
function spawnUntil(cmd, args, re, { env, timeoutMs = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...(env || {}) },
    });
    procs.add(p);
    let out = '';
    let err = '';
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      p.kill('SIGKILL');
      reject(new Error(`${path.basename(cmd)}: no listening line after ${timeoutMs} ms: ${out} ${err}`));
    }, timeoutMs);
    p.stderr.on('data', (d) => { err += d; });
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(re);
      if (m && !done) {
        done = true;
        clearTimeout(timer);
        resolve({ proc: p, match: m, stderr: () => err, stdout: () => out });
      }
    });
    p.on('error', (e) => {
      procs.delete(p);
      if (!done) { done = true; clearTimeout(timer); reject(e); }
    });
    p.on('exit', (code, sig) => {
      procs.delete(p);
      if (!done) {
        done = true;
        clearTimeout(timer);
        reject(new Error(`${path.basename(cmd)} exited (${code ?? sig}) before listening: ${err}`));
      }
    });
  });
}

/* Stop one child: SIGTERM, then SIGKILL after graceMs. */
export function stopProc(p, graceMs = 3000) {
  return new Promise((resolve) => {
    if (!p || p.exitCode !== null || p.signalCode !== null) {
      procs.delete(p);
      resolve();
      return;
    }
    const t = setTimeout(() => { try { p.kill('SIGKILL'); } catch { /* gone */ } }, graceMs);
    p.once('exit', () => { clearTimeout(t); procs.delete(p); resolve(); });
    p.kill('SIGTERM');
  });
}

/* Stop every process this module started and remove the temp folders. */
export async function stopAll() {
  await Promise.all([...procs].map((p) => stopProc(p)));
  for (const d of dirs) {
    try { rmSync(d, { recursive: true, force: true }); } catch { /* ignore */ }
  }
  dirs.clear();
}

async function getJSON(url, opts = {}) {
  const r = await fetch(url, opts);
  const text = await r.text();
  if (!r.ok) throw new Error(`${opts.method || 'GET'} ${url}: HTTP ${r.status}: ${text}`);
  return JSON.parse(text);
}

/* Start a mocklab. args: extra CLI arguments (--cached-tokens 5,
 * --no-usage, --require-key K, --itl-ms 20, ...). Returns
 * {port, base, v1, stats(), reset(), script(list), stop()}. */
export async function startMock(args = []) {
  const s = await spawnUntil(MOCKLAB, ['--port', '0', '--quiet', ...args],
                             /listening on 127\.0\.0\.1:(\d+)/);
  const port = Number(s.match[1]);
  const base = `http://127.0.0.1:${port}`;
  return {
    proc: s.proc,
    port,
    base,
    v1: `${base}/v1`,
    stderr: s.stderr,
    stdout: s.stdout,
    stats: () => getJSON(`${base}/mock/stats`),
    reset: () => getJSON(`${base}/mock/reset`, { method: 'POST' }),
    script: (faults) => getJSON(`${base}/mock/script`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ faults }),
    }),
    stop: () => stopProc(s.proc),
  };
}

/* A loopback port nothing listens on (bound, then closed). */
export function closedPort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/* Start `hotpath serve --config` with cfg (an object; listen and
 * database are filled in unless given). env: extra environment (upstream
 * keys, HOTPATH_ADMIN_KEY). Returns {port, base, v1, dir, configPath,
 * stderr(), metrics(), metric(name, labels), usage(limit), stop()}. */
export async function startGateway(cfg, { env = {}, adminKey = null, timeoutMs = 60000 } = {}) {
  const dir = tempDir('gw');
  const full = {
    listen: { host: '127.0.0.1', port: 0 },
    database: path.join(dir, 'hotpath.db'),
    ...cfg,
  };
  const configPath = path.join(dir, 'hotpath.yaml');
  writeFileSync(configPath, JSON.stringify(full, null, 1));
  const e = { ...env };
  if (adminKey) e.HOTPATH_ADMIN_KEY = adminKey;
  const s = await spawnUntil(BIN, ['serve', '--config', configPath],
                             /hotpath: gateway on http:\/\/\S+:(\d+) \(/,
                             { env: e, timeoutMs });
  const port = Number(s.match[1]);
  const base = `http://127.0.0.1:${port}`;
  const g = {
    proc: s.proc,
    port,
    base,
    v1: `${base}/v1`,
    dir,
    configPath,
    stderr: s.stderr,
    stdout: s.stdout,
    metrics: async () => {
      const r = await fetch(`${base}/metrics`);
      return r.text();
    },
    /* Sum of the samples of metric name whose labels include labels. */
    metric: async (name, labels = {}) => metricValue(await g.metrics(), name, labels),
    usage: async (limit = 100) => {
      if (!adminKey) throw new Error('startGateway: no adminKey given');
      return (await getJSON(`${base}/admin/usage?limit=${limit}`, {
        headers: { authorization: `Bearer ${adminKey}` },
      })).data;
    },
    stop: () => stopProc(s.proc),
  };
  return g;
}

/* `hotpath serve -m MODEL --port 0`: a runtime to use as an upstream.
 * Returns {port, base, v1, modelName, stop()}. */
export async function startRuntime(model = MODEL, args = []) {
  const s = await spawnUntil(BIN, ['serve', '-m', model, '--port', '0', ...args],
                             /hotpath: serving .* as (\S+) on http:\/\/127\.0\.0\.1:(\d+)/);
  const port = Number(s.match[2]);
  const base = `http://127.0.0.1:${port}`;
  return {
    proc: s.proc, port, base, v1: `${base}/v1`, modelName: s.match[1],
    stderr: s.stderr, stdout: s.stdout, stop: () => stopProc(s.proc),
  };
}

function parseLabels(s) {
  const out = {};
  const re = /(\w+)="((?:[^"\\]|\\.)*)"/g;
  let m;
  while ((m = re.exec(s))) out[m[1]] = m[2].replace(/\\(.)/g, '$1');
  return out;
}

/* Sum of the samples of name (exact, no _bucket etc.) in Prometheus text
 * whose labels include every pair of want; 0 when none. */
export function metricValue(text, name, want = {}) {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    let labels = {};
    let value;
    if (rest.startsWith('{')) {
      const end = rest.lastIndexOf('}');
      labels = parseLabels(rest.slice(1, end));
      value = rest.slice(end + 1).trim();
    } else if (rest.startsWith(' ')) {
      value = rest.trim();
    } else {
      continue;
    }
    if (Object.entries(want).every(([k, v]) => labels[k] === String(v)))
      sum += Number(value.split(' ')[0]);
  }
  return sum;
}

/* Poll fn until it returns truthy or timeoutMs passes; returns the last
 * value. */
export async function waitFor(fn, timeoutMs = 2000, stepMs = 20) {
  const t0 = Date.now();
  let v;
  for (;;) {
    v = await fn();
    if (v || Date.now() - t0 > timeoutMs) return v;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
