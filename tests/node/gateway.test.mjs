// gateway.test.mjs: `hotpath serve --config` as the official `openai` npm
// SDK sees it, in front of mocklab upstreams and a real hotpath runtime:
// canary splits, fallbacks on every scripted fault, retries, circuit
// breakers, mid-stream failures, client disconnects, include_usage,
// usage accounting equal streamed and not, the response cache, and the
// upstream keys (sent upstream, never logged).
//
// Every process (mocklabs, gateways, runtimes) is started here on a free
// loopback port with its own temp config and database (gwharness.mjs) and
// killed at the end, pass or fail. Skips when mocklab or the SDK is
// absent; the runtime case skips when stories260K.gguf is absent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as h from './gwharness.mjs';

let OpenAI = null;
try {
  OpenAI = (await import('openai')).default;
} catch {
  OpenAI = null;
}
const skip = h.skipReason() || (!OpenAI ? 'openai SDK not installed (npm ci in tests/node)' : false);
const skipModel = skip || (!existsSync(h.MODEL) ? `model ${h.MODEL} not found` : false);

const KEY_A = `sk-mockA-${randomBytes(12).toString('hex')}`;
const KEY_B = `sk-mockB-${randomBytes(12).toString('hex')}`;
const KEY_C = `sk-ant-mockC-${randomBytes(12).toString('hex')}`;
const ADMIN = `adm-${randomBytes(12).toString('hex')}`;
const ALL_KEYS = [KEY_A, KEY_B, KEY_C, ADMIN];
const ENV = { GWT_KEY_A: KEY_A, GWT_KEY_B: KEY_B, GWT_KEY_C: KEY_C };

const WORDS8 = 'w1 w2 w3 w4 w5 w6 w7 w8';   // mocklab's natural reply
const FALLBACK_ON = [401, 429, 500, 502, 503, 504, 'timeout', 'connect'];
const MSGS = [{ role: 'user', content: 'say something nice' }];

const M = {};           // mocklabs by role
const gateways = [];    // every gateway started, for the stderr check
let gw = null;          // the main gateway
let client = null;

function mkClient(g) {
  return new OpenAI({ baseURL: g.v1, apiKey: 'unused', maxRetries: 0, timeout: 20000 });
}

async function gateway(cfg, opts = {}) {
  const g = await h.startGateway(cfg, { env: ENV, adminKey: ADMIN, ...opts });
  gateways.push(g);
  return g;
}

/* A route through one target with the shared fallback. */
function fbRoute(model, upstream, target, extra = {}) {
  return {
    model,
    targets: [{ upstream, model: target }],
    fallback: [{ upstream: 'b', model: 'fb' }],
    fallback_on: FALLBACK_ON,
    timeouts: { connect_ms: 1000, first_token_ms: 500, total_ms: 10000 },
    ...extra,
  };
}

const FAULT_ROUTES = {
  'fb-401': 'fault-401', 'fb-429': 'fault-429', 'fb-500': 'fault-500',
  'fb-slow': 'fault-slow-3000', 'fb-cut': 'fault-cut-0',
  'fb-stall': 'fault-stall-0', 'fb-malformed': 'fault-malformed-0',
};

const PRICES = {
  'u-cached': { input: 3, output: 6, cached_input: 1 },
  'u-anth': { input: 2, output: 4, cached_input: 0.5 },
  'u-est': { input: 1, output: 1 },
};

before(async () => {
  if (skip) return;
  const [a, b, s, an, cached, nousage, disc] = await Promise.all([
    h.startMock(['--require-key', KEY_A]),
    h.startMock(['--require-key', KEY_B]),
    h.startMock(['--require-key', KEY_A]),
    h.startMock(['--require-key', KEY_C, '--cached-tokens', '1']),
    h.startMock(['--cached-tokens', '2']),
    h.startMock(['--no-usage']),
    h.startMock(['--itl-ms', '50', '--tokens', '40']),
  ]);
  Object.assign(M, { a, b, s, an, cached, nousage, disc });
  const dead = await h.closedPort();
  const routes = [
    { model: 'canary', targets: [{ upstream: 'a', model: 'm-stable', weight: 90 },
                                 { upstream: 'a', model: 'm-canary', weight: 10 }] },
    { model: 'plain', targets: [{ upstream: 'a', model: 'm-plain' }] },
    ...Object.entries(FAULT_ROUTES).map(([r, t]) => fbRoute(r, 'a', t)),
    fbRoute('fb-connect', 'dead', 'm-dead'),
    fbRoute('fb-anth-cut', 'anth', 'fault-cut-0'),
    fbRoute('fb-anth-500', 'anth', 'fault-500'),
    // mid-stream failures: a fallback is configured but must not be used
    fbRoute('mid-cut', 'a', 'fault-cut-3'),
    fbRoute('mid-stall', 'a', 'fault-stall-3', {
      timeouts: { connect_ms: 1000, first_token_ms: 300, total_ms: 10000 } }),
    fbRoute('mid-malformed', 'a', 'fault-malformed-3'),
    { model: 'disc', targets: [{ upstream: 'disc', model: 'm-disc' }],
      timeouts: { first_token_ms: 10000, total_ms: 30000 } },
    { model: 'retry', targets: [{ upstream: 's', model: 'm-retry' }], retries: 2 },
    { model: 'circuit', targets: [{ upstream: 's', model: 'm-primary' }],
      fallback: [{ upstream: 'b', model: 'fb-circuit' }],
      circuit: { failures: 3, cooldown_ms: 1000 } },
    { model: 'u-cached', targets: [{ upstream: 'cached', model: 'u-cached' }] },
    { model: 'u-anth', targets: [{ upstream: 'anth', model: 'u-anth' }] },
    { model: 'u-est', targets: [{ upstream: 'nousage', model: 'u-est' }] },
  ];
  gw = await gateway({
    upstreams: [
      { name: 'a', kind: 'openai', base_url: a.v1, api_key_env: 'GWT_KEY_A' },
      { name: 'b', kind: 'openai', base_url: b.v1, api_key_env: 'GWT_KEY_B' },
      { name: 's', kind: 'openai', base_url: s.v1, api_key_env: 'GWT_KEY_A' },
      { name: 'anth', kind: 'anthropic', base_url: an.base, api_key_env: 'GWT_KEY_C' },
      { name: 'cached', kind: 'openai', base_url: cached.v1 },
      { name: 'nousage', kind: 'openai', base_url: nousage.v1 },
      { name: 'disc', kind: 'openai', base_url: disc.v1 },
      { name: 'dead', kind: 'openai', base_url: `http://127.0.0.1:${dead}/v1` },
    ],
    routes,
    prices: PRICES,
  });
  client = mkClient(gw);
});

after(async () => {
  await h.stopAll();
});

/* ---- helpers ---------------------------------------------------------------- */

/* Non-streamed chat through the SDK: {data, target, cache, response}. */
async function chat(c, params) {
  const { data, response } = await c.chat.completions.create({ messages: MSGS, ...params }).withResponse();
  return { data, response, target: response.headers.get('x-hotpath-target'),
           cache: response.headers.get('x-hotpath-cache') };
}

/* Streamed chat through the SDK: {text, finish, chunks, target, cache}. */
async function chatStream(c, params) {
  const { data: stream, response } = await c.chat.completions
    .create({ messages: MSGS, ...params, stream: true }).withResponse();
  let text = '';
  let finish = null;
  const chunks = [];
  for await (const ch of stream) {
    chunks.push(ch);
    for (const choice of ch.choices) {
      if (choice.delta?.content) text += choice.delta.content;
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  return { text, finish, chunks, target: response.headers.get('x-hotpath-target'),
           cache: response.headers.get('x-hotpath-cache') };
}

/* A raw request with fetch: {status, headers, body, events} where events
 * are the SSE data payloads in order. */
async function raw(g, body, path = '/v1/chat/completions') {
  const r = await fetch(g.base + path, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  const events = text.split(/\r?\n\r?\n/).flatMap((ev) =>
    ev.split(/\r?\n/).filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)));
  return { status: r.status, headers: r.headers, body: text, events };
}

const gwMetric = (name, labels) => gw.metric(name, labels);

/* ---- 1. canary split -------------------------------------------------------- */

test('gateway_canary_split_follows_weights', { skip }, async () => {
  await M.a.reset();
  const N = 1000;
  const CONC = 20;
  const seen = { 'a/m-stable': 0, 'a/m-canary': 0 };
  let next = 0;
  async function worker() {
    while (next < N) {
      next++;
      const r = await chat(client, { model: 'canary' });
      assert.equal(r.data.choices[0].message.content, WORDS8);
      assert.ok(r.target in seen, `unexpected target ${r.target}`);
      assert.equal(r.response.headers.get('x-hotpath-route'), 'canary');
      seen[r.target]++;
    }
  }
  await Promise.all(Array.from({ length: CONC }, worker));
  // binomial(1000, 0.1): sigma = 9.5; allow 4 sigma
  const sigma = Math.sqrt(N * 0.1 * 0.9);
  const tol = 4 * sigma;
  assert.equal(seen['a/m-stable'] + seen['a/m-canary'], N);
  assert.ok(Math.abs(seen['a/m-canary'] - N * 0.1) <= tol,
            `canary got ${seen['a/m-canary']} of ${N} (want 100 +- ${tol.toFixed(0)})`);
  const st = await M.a.stats();
  assert.equal(st.by_model['m-canary'], seen['a/m-canary']);
  assert.equal(st.by_model['m-stable'], seen['a/m-stable']);
  assert.equal(st.requests, N);
});

/* ---- 2. fallback on every failure before the first byte --------------------- */

test('gateway_falls_back_on_each_fault_before_first_byte', { skip }, async () => {
  const routes = [...Object.keys(FAULT_ROUTES), 'fb-connect', 'fb-anth-cut', 'fb-anth-500'];
  for (const route of routes) {
    for (const stream of [false, true]) {
      const fb0 = await gwMetric('hotpath_gateway_fallbacks_total', { route });
      const uf0 = await gwMetric('hotpath_gateway_upstream_failures_total', { route });
      const bReq0 = (await M.b.stats()).by_model.fb || 0;
      const what = `${route} stream=${stream}`;
      let r;
      if (stream) {
        r = await chatStream(client, { model: route });
        assert.equal(r.text, WORDS8, what);
        assert.equal(r.finish, 'stop', what);
      } else {
        r = await chat(client, { model: route });
        assert.equal(r.data.choices[0].message.content, WORDS8, what);
        assert.equal(r.data.choices[0].finish_reason, 'stop', what);
        assert.equal(r.data.usage.completion_tokens, 8, what);
      }
      assert.equal(r.target, 'b/fb', what);
      assert.equal(r.cache, 'miss', what);
      assert.equal((await M.b.stats()).by_model.fb, bReq0 + 1, what);
      assert.equal(await gwMetric('hotpath_gateway_fallbacks_total', { route }), fb0 + 1, what);
      assert.equal(await gwMetric('hotpath_gateway_upstream_failures_total', { route }), uf0 + 1, what);
    }
  }
});

/* ---- 3. retries ---------------------------------------------------------------- */

test('gateway_retries_then_succeeds_or_passes_the_error_through', { skip }, async () => {
  await M.s.reset();
  await M.s.script(['500', '500', 'ok']);
  const r = await chat(client, { model: 'retry' });
  assert.equal(r.data.choices[0].message.content, WORDS8);
  assert.equal(r.target, 's/m-retry');
  assert.equal((await M.s.stats()).requests, 3);
  assert.equal(await gwMetric('hotpath_gateway_retries_total', { route: 'retry' }), 2);

  await M.s.reset();
  await M.s.script(['500', '500', '500']);
  await assert.rejects(chat(client, { model: 'retry' }), (e) => {
    assert.ok(e instanceof OpenAI.InternalServerError, `got ${e?.constructor?.name}: ${e}`);
    assert.equal(e.status, 500);
    assert.equal(typeof e.error?.message, 'string');
    assert.match(e.error.message, /mock fault/);
    return true;
  });
  assert.equal((await M.s.stats()).requests, 3);
  // the same through fetch: an OpenAI error object, passed through
  await M.s.reset();
  await M.s.script(['500', '500', '500']);
  const x = await raw(gw, { model: 'retry', messages: MSGS });
  assert.equal(x.status, 500);
  const body = JSON.parse(x.body);
  assert.equal(typeof body.error, 'object');
  assert.equal(typeof body.error.message, 'string');
  assert.ok('type' in body.error);
  assert.equal(x.headers.get('x-hotpath-target'), 's/m-retry');
});

/* ---- 4. circuit breaker ----------------------------------------------------- */

test('gateway_circuit_opens_skips_the_primary_and_probes_once', { skip }, async () => {
  const open = () => gwMetric('hotpath_gateway_circuit_open', { route: 'circuit', target: 's/m-primary' });
  await M.s.reset();
  await M.s.script(['500', '500', '500']);
  for (let i = 0; i < 3; i++) {
    const r = await chat(client, { model: 'circuit' });
    assert.equal(r.target, 'b/fb-circuit', `request ${i}`);
    assert.equal(r.data.choices[0].message.content, WORDS8);
  }
  assert.equal((await M.s.stats()).requests, 3);
  assert.equal(await open(), 1);
  const t0 = Date.now();
  const r4 = await chat(client, { model: 'circuit' });
  assert.equal(r4.target, 'b/fb-circuit');
  assert.equal((await M.s.stats()).requests, 3, 'the open circuit kept the 4th off the primary');

  // after the cool-down: one slow probe; requests during it use the fallback
  await h.sleep(Math.max(0, 1100 - (Date.now() - t0)));
  await M.s.script(['slow-1000']);
  const probe = chat(client, { model: 'circuit' });
  await h.waitFor(async () => (await M.s.stats()).requests === 4, 1000);
  const during = await Promise.all([chat(client, { model: 'circuit' }), chat(client, { model: 'circuit' })]);
  for (const d of during) assert.equal(d.target, 'b/fb-circuit');
  const p = await probe;
  assert.equal(p.target, 's/m-primary');
  assert.equal((await M.s.stats()).requests, 4, 'exactly one probe');
  // closed again: traffic returns to the primary
  for (let i = 0; i < 3; i++)
    assert.equal((await chat(client, { model: 'circuit' })).target, 's/m-primary');
  assert.equal((await M.s.stats()).requests, 7);
  assert.equal(await open(), 0);
});

/* ---- 5. failures after the first byte ---------------------------------------- */

for (const [route, what] of [['mid-cut', 'cut'], ['mid-stall', 'stall'], ['mid-malformed', 'malformed']]) {
  test(`gateway_midstream_${what}_ends_with_error_event_and_no_done`, { skip }, async () => {
    const b0 = (await M.b.stats()).requests;
    const { data: stream, response } = await client.chat.completions
      .create({ model: route, messages: MSGS, stream: true }).withResponse();
    assert.equal(response.headers.get('x-hotpath-target'), `a/fault-${what}-3`);
    let text = '';
    let err = null;
    try {
      for await (const ch of stream)
        text += ch.choices[0]?.delta?.content || '';
    } catch (e) {
      err = e;
    }
    assert.equal(text, 'w1 w2 w3', 'the first chunks arrived');
    assert.ok(err instanceof OpenAI.APIError, `stream ended with ${err}`);
    assert.match(err.message, /mid-stream/);

    const x = await raw(gw, { model: route, messages: MSGS, stream: true });
    assert.equal(x.status, 200);
    assert.ok(x.events.length >= 4, x.body);
    const last = x.events[x.events.length - 1];
    assert.ok(last.startsWith('{"error":'), `last event: ${last}`);
    assert.match(x.body, /^data: \{"error":/m);
    assert.doesNotMatch(x.body, /^data: \[DONE\]/m);
    assert.equal((await M.b.stats()).requests, b0, 'no fallback after the first byte');
  });
}

/* ---- 6. client disconnect ------------------------------------------------------ */

test('gateway_client_disconnect_cancels_the_upstream', { skip }, async () => {
  await M.disc.reset();
  const ac = new AbortController();
  const r = await fetch(`${gw.v1}/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'disc', messages: MSGS, stream: true }),
    signal: ac.signal,
  });
  assert.equal(r.status, 200);
  const reader = r.body.getReader();
  let got = '';
  while (!/"content":"w1"/.test(got)) {
    const { value, done } = await reader.read();
    assert.ok(!done, 'stream ended early');
    got += Buffer.from(value).toString();
  }
  assert.equal((await M.disc.stats()).active, 1);
  ac.abort();
  const t0 = Date.now();
  const st = await h.waitFor(async () => {
    const s = await M.disc.stats();
    return s.client_closed >= 1 && s.active === 0 ? s : null;
  }, 1000);
  assert.ok(st, `mock still streaming ${Date.now() - t0} ms after the abort: ${JSON.stringify(await M.disc.stats())}`);
  assert.equal(st.client_closed, 1);
});

/* ---- 7. include_usage ------------------------------------------------------------ */

test('gateway_include_usage_forced_upstream_and_hidden_unless_asked', { skip }, async () => {
  const a = await chatStream(client, { model: 'plain' });
  assert.equal(a.text, WORDS8);
  const st = await M.a.stats();
  assert.equal(st.last_request.model, 'm-plain');
  assert.equal(st.last_request.stream_options?.include_usage, true);
  for (const ch of a.chunks) assert.ok(!('usage' in ch), `usage leaked: ${JSON.stringify(ch)}`);
  const x = await raw(gw, { model: 'plain', messages: MSGS, stream: true });
  assert.doesNotMatch(x.body, /"usage"/);
  assert.equal(x.events[x.events.length - 1], '[DONE]');

  const b = await chatStream(client, { model: 'plain', stream_options: { include_usage: true } });
  assert.equal(b.text, WORDS8);
  const withUsage = b.chunks.filter((ch) => ch.usage);
  assert.equal(withUsage.length, 1);
  assert.equal(withUsage[0].usage.completion_tokens, 8);
  assert.equal(withUsage[0].usage.prompt_tokens, 4);
  assert.equal(withUsage[0].choices.length, 0);
});

/* ---- 8. usage equal streamed and not ---------------------------------------------- */

async function usagePair(route, params = {}) {
  const ns = await chat(client, { model: route, ...params });
  const s = await chatStream(client, { model: route, ...params });
  const rows = (await gw.usage(50)).filter((r) => r.route === route);
  assert.ok(rows.length >= 2, `ledger rows for ${route}: ${JSON.stringify(rows)}`);
  const [rs, rn] = rows; // newest first
  assert.equal(rs.stream, true);
  assert.equal(rn.stream, false);
  for (const r of [rs, rn]) {
    assert.equal(r.status, 200);
    assert.equal(r.cache_hit, false);
    assert.equal(r.target, `${route === 'u-anth' ? 'anth' : route === 'u-est' ? 'nousage' : 'cached'}/${route}`);
  }
  for (const k of ['prompt_tokens', 'cached_tokens', 'completion_tokens', 'estimated'])
    assert.equal(rs[k], rn[k], `${route}: ${k} streamed ${rs[k]} vs not ${rn[k]}`);
  assert.ok(Math.abs(rs.cost_usd - rn.cost_usd) < 1e-12, `${route}: cost ${rs.cost_usd} vs ${rn.cost_usd}`);
  return { ns, s, row: rn };
}

function expectedCost(p, row) {
  const ci = p.cached_input ?? p.input;
  return ((row.prompt_tokens - row.cached_tokens) * p.input + row.cached_tokens * ci +
          row.completion_tokens * p.output) / 1e6;
}

test('gateway_usage_equal_streamed_and_not_openai_with_cached_tokens', { skip }, async () => {
  const { ns, s, row } = await usagePair('u-cached');
  assert.equal(ns.data.choices[0].message.content, WORDS8);
  assert.equal(s.text, WORDS8);
  assert.equal(row.prompt_tokens, 4);
  assert.equal(row.cached_tokens, 2);
  assert.equal(row.completion_tokens, 8);
  assert.equal(row.estimated, false);
  assert.ok(Math.abs(row.cost_usd - expectedCost(PRICES['u-cached'], row)) < 1e-12,
            `cost ${row.cost_usd}`);
});

test('gateway_usage_equal_streamed_and_not_anthropic', { skip }, async () => {
  const { ns, s, row } = await usagePair('u-anth');
  assert.equal(ns.data.choices[0].message.content, WORDS8);
  assert.equal(ns.data.choices[0].finish_reason, 'stop');
  assert.equal(ns.data.object, 'chat.completion');
  assert.equal(s.text, WORDS8);
  assert.equal(s.finish, 'stop');
  assert.equal(row.prompt_tokens, 4);
  assert.equal(row.cached_tokens, 1);
  assert.equal(row.completion_tokens, 8);
  assert.equal(row.estimated, false);
  assert.ok(Math.abs(row.cost_usd - expectedCost(PRICES['u-anth'], row)) < 1e-12);
  // max_tokens cuts it: "length" both ways
  const l = await usagePair('u-anth', { max_tokens: 3 });
  assert.equal(l.ns.data.choices[0].message.content, 'w1 w2 w3');
  assert.equal(l.ns.data.choices[0].finish_reason, 'length');
  assert.equal(l.s.text, 'w1 w2 w3');
  assert.equal(l.s.finish, 'length');
  assert.equal(l.row.completion_tokens, 3);
  const st = await M.an.stats();
  assert.equal(st.last_request.model, 'u-anth');
  assert.equal(st.last_request.max_tokens, 3);
});

test('gateway_usage_equal_streamed_and_not_estimated', { skip }, async () => {
  const { ns, s, row } = await usagePair('u-est');
  assert.equal(ns.data.choices[0].message.content, WORDS8);
  assert.equal(s.text, WORDS8);
  assert.equal(row.estimated, true);
  assert.ok(row.prompt_tokens > 0);
  assert.ok(row.completion_tokens > 0);
  assert.ok(Math.abs(row.cost_usd - expectedCost(PRICES['u-est'], row)) < 1e-12);
});

/* ---- keys: sent upstream, never logged ------------------------------------------------ */

test('gateway_sends_upstream_keys_and_never_logs_them', { skip }, async () => {
  await chat(client, { model: 'plain' });
  assert.equal((await M.a.stats()).last_headers.authorization, `Bearer ${KEY_A}`);
  await chat(client, { model: 'fb-500' });
  assert.equal((await M.b.stats()).last_headers.authorization, `Bearer ${KEY_B}`);
  await chat(client, { model: 'u-anth' });
  const an = (await M.an.stats()).last_headers;
  assert.equal(an['x-api-key'], KEY_C);
  assert.ok(!('authorization' in an));
  assert.ok(an['anthropic-version']);
  // the upstreams without api_key_env get no auth header
  await chat(client, { model: 'u-est' });
  assert.ok(!('authorization' in (await M.nousage.stats()).last_headers));
});

/* ---- 9. response cache ---------------------------------------------------------------- */

test('gateway_cache_hits_temperature_zero_and_replays_streams', { skip }, async () => {
  const g = await gateway({
    upstreams: [{ name: 'a', kind: 'openai', base_url: M.a.v1, api_key_env: 'GWT_KEY_A' }],
    routes: [{ model: 'cached', targets: [{ upstream: 'a', model: 'm-cache' }] }],
    cache: { max_mb: 8, ttl_s: 60 },
  });
  const c = mkClient(g);
  const seen = async () => (await M.a.stats()).by_model['m-cache'] || 0;
  const n0 = await seen();
  const p = { model: 'cached', temperature: 0, messages: [{ role: 'user', content: 'cache me' }] };
  const r1 = await chat(c, p);
  assert.equal(r1.cache, 'miss');
  assert.equal(r1.target, 'a/m-cache');
  const r2 = await chat(c, p);
  assert.equal(r2.cache, 'hit');
  assert.equal(r2.data.choices[0].message.content, r1.data.choices[0].message.content);
  assert.equal(await seen(), n0 + 1, 'the mock saw one request');

  const s = await chatStream(c, p);
  assert.equal(s.cache, 'hit');
  assert.equal(s.text, WORDS8);
  assert.equal(s.finish, 'stop');
  const x = await raw(g, { ...p, stream: true });
  assert.equal(x.headers.get('x-hotpath-cache'), 'hit');
  assert.equal(x.events[x.events.length - 1], '[DONE]');
  assert.equal(await seen(), n0 + 1);

  const warm = { ...p, temperature: 0.7 };
  for (let i = 0; i < 2; i++)
    assert.equal((await chat(c, warm)).cache, 'miss');
  assert.equal((await chatStream(c, warm)).cache, 'miss');
  assert.equal(await seen(), n0 + 4);
  const rows = await g.usage(10);
  assert.equal(rows.filter((r) => r.cache_hit).length, 3);
});

/* ---- 10. a real runtime as an upstream, and a local model ---------------------------- */

test('gateway_remote_runtime_and_local_model_match_direct_answers', { skip: skipModel }, async () => {
  const rt = await h.startRuntime();
  const g = await gateway({
    models: [{ name: 'tiny', path: h.MODEL, parallel: 2, threads: 1 }],
    upstreams: [{ name: 'rt', kind: 'openai', base_url: rt.v1 }],
    routes: [
      { model: 'remote', targets: [{ upstream: 'rt', model: rt.modelName }] },
      { model: 'local', targets: [{ local: 'tiny' }] },
    ],
  });
  const direct = new OpenAI({ baseURL: rt.v1, apiKey: 'unused', maxRetries: 0 });
  const c = mkClient(g);
  const base = { prompt: 'Once upon a time', max_tokens: 24, temperature: 0 };
  const want = (await direct.completions.create({ ...base, model: rt.modelName })).choices[0].text;
  assert.ok(want.length > 0);
  const wantChat = (await direct.chat.completions.create({
    model: rt.modelName, messages: [{ role: 'user', content: 'Tell me a story' }],
    max_tokens: 16, temperature: 0 })).choices[0].message.content;
  for (const [route, target] of [['remote', `rt/${rt.modelName}`], ['local', 'local/tiny']]) {
    const { data, response } = await c.completions.create({ ...base, model: route }).withResponse();
    assert.equal(response.headers.get('x-hotpath-target'), target);
    assert.equal(data.choices[0].text, want, `${route} non-streamed`);
    const stream = await c.completions.create({ ...base, model: route, stream: true });
    let text = '';
    for await (const ch of stream) text += ch.choices[0]?.text || '';
    assert.equal(text, want, `${route} streamed`);
    const ch = await chat(c, { model: route, messages: [{ role: 'user', content: 'Tell me a story' }],
                               max_tokens: 16, temperature: 0 });
    assert.equal(ch.data.choices[0].message.content, wantChat, `${route} chat`);
    const cs = await chatStream(c, { model: route, messages: [{ role: 'user', content: 'Tell me a story' }],
                                     max_tokens: 16, temperature: 0 });
    assert.equal(cs.text, wantChat, `${route} chat streamed`);
  }
  await g.stop();
  await rt.stop();
});

/* ---- last: no gateway ever logged a key ------------------------------------------------ */

test('gateway_stderr_never_contains_a_key', { skip }, async () => {
  assert.ok(gateways.length >= 2);
  for (const g of gateways) {
    for (const k of ALL_KEYS)
      assert.ok(!g.stderr().includes(k), 'a key appeared on the gateway stderr');
    assert.ok(!g.stdout().includes(KEY_A) && !g.stdout().includes(KEY_C));
  }
});
