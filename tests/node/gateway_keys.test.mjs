// gateway_keys.test.mjs: the gateway's virtual keys as the official
// `openai` SDK (pinned in package.json, maxRetries 0) and an operator see
// them: 401 for missing, wrong and revoked keys; 403 for a route outside
// a key's list; models.retrieve() behind the key check; USD and token
// budgets that are never overspent, even by 50 requests in flight at once,
// and whose remainder stays usable; RPM and TPM windows; the admin API (off without its key, 401 for a wrong one,
// create/list/revoke, no secrets in listings, 400 naming the field, 404);
// and no secret (client, admin or upstream) in the gateway's output.
//
// Runs two mocklab upstreams (one answering at once, one after 250 ms so
// that concurrent requests overlap) behind `hotpath serve --config`, all
// on free loopback ports via gwharness.mjs. Skips when mocklab or the SDK
// is absent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import * as H from './gwharness.mjs';

let OpenAI = null;
try {
  OpenAI = (await import('openai')).default;
} catch {
  OpenAI = null;
}
const skip = H.skipReason() ||
  (!OpenAI ? 'openai SDK not installed (npm ci in tests/node)' : false);

const ADMIN = `adm-gwk-${randomBytes(12).toString('hex')}`;
const UPKEY = `up-gwk-${randomBytes(12).toString('hex')}`;
const PRICED = 'priced-model';      // upstream model name with a price
const PRICE = 1000;                 // USD per million tokens, in and out
const SLOW_MS = 250;                // first-byte delay of the slow mock

let fast = null;     // mocklab, immediate replies
let slow = null;     // mocklab, SLOW_MS before the reply
let gw = null;       // gateway with keys required and the admin API on
let gwOff = null;    // gateway without an admin key (admin API off)
const outputs = [];  // () => text: every gateway's stdout + stderr
const secrets = new Set([ADMIN, UPKEY]);

function capture(g) {
  let out = '';
  g.proc.stdout.on('data', (d) => { out += d; });
  outputs.push(() => out + g.stderr());
}

before(async () => {
  if (skip) return;
  fast = await H.startMock(['--require-key', UPKEY]);
  slow = await H.startMock(['--require-key', UPKEY, '--ttft-ms', String(SLOW_MS),
                            '--tokens', '64']);
  const dead = await H.closedPort();
  const cfg = {
    upstreams: [
      { name: 'fast', kind: 'openai', base_url: fast.v1, api_key_env: 'GWK_UP_KEY' },
      { name: 'slow', kind: 'openai', base_url: slow.v1, api_key_env: 'GWK_UP_KEY' },
      { name: 'dead', kind: 'openai', base_url: `http://127.0.0.1:${dead}/v1`,
        api_key_env: 'GWK_UP_KEY' },
    ],
    routes: [
      { model: 'chat', targets: [{ upstream: 'fast', model: 'fast-model' }] },
      { model: 'other', targets: [{ upstream: 'fast', model: 'other-model' }] },
      { model: 'slow', targets: [{ upstream: 'slow', model: PRICED }] },
      { model: 'dead', targets: [{ upstream: 'dead', model: 'gone' }],
        timeouts: { connect_ms: 500, first_token_ms: 1000, total_ms: 2000 } },
    ],
    prices: { [PRICED]: { input: PRICE, output: PRICE } },
    auth: { require_keys: true },
  };
  gw = await H.startGateway(cfg, { env: { GWK_UP_KEY: UPKEY }, adminKey: ADMIN });
  capture(gw);
  // '' counts as unset, whatever the caller's environment holds
  gwOff = await H.startGateway(cfg, { env: { GWK_UP_KEY: UPKEY, HOTPATH_ADMIN_KEY: '' } });
  capture(gwOff);
});

after(async () => {
  await H.stopAll();
});

/* ---- helpers --------------------------------------------------------------- */

function client(apiKey, g = gw) {
  return new OpenAI({ apiKey, baseURL: g.v1, maxRetries: 0, timeout: 20000 });
}

/* One admin call; {status, headers, body (parsed JSON or null), text}. */
async function admin(method, p, body, key = ADMIN, g = gw) {
  const headers = {};
  if (key !== null) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(`${g.base}${p}`, {
    method, headers,
    body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)),
  });
  const text = await r.text();
  let parsed = null;
  try { parsed = JSON.parse(text); } catch { parsed = null; }
  return { status: r.status, headers: r.headers, body: parsed, text };
}

async function createKey(spec) {
  const r = await admin('POST', '/admin/keys', spec);
  assert.equal(r.status, 201, r.text);
  assert.match(r.body.secret, /^hp-/);
  secrets.add(r.body.secret);
  return r.body;
}

async function keyRow(id) {
  const r = await admin('GET', '/admin/keys');
  assert.equal(r.status, 200, r.text);
  return r.body.data.find((k) => k.id === id);
}

function keysCli(args) {
  return execFileSync(H.BIN, ['keys', ...args, '--db', path.join(gw.dir, 'hotpath.db')],
                      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/* An OpenAI error body: {error: {message, type, param, code}}. */
function assertErrorJSON(body, code) {
  assert.ok(body && typeof body.error === 'object', JSON.stringify(body));
  const e = body.error;
  assert.equal(typeof e.message, 'string');
  assert.ok(e.message.length > 0);
  for (const k of ['type', 'param', 'code']) assert.ok(k in e, `error.${k} missing`);
  if (code !== undefined) assert.equal(e.code, code);
}

/* await p, which must reject with SDK error class cls; returns the error. */
async function rejects(p, cls, status) {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof cls, `${e.constructor.name} (${e.status}): ${e.message}`);
    assert.equal(e.status, status);
    return e;
  }
  assert.fail(`expected ${cls.name}`);
}

const chat = (c, model, extra = {}) => c.chat.completions.create({
  model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 8, ...extra,
});

/* ---- 1. authentication ----------------------------------------------------- */

test('keys_401_missing_wrong_malformed', { skip }, async () => {
  const url = `${gw.v1}/chat/completions`;
  const body = JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] });
  for (const headers of [{}, { authorization: 'Basic dXNlcjpwYXNz' },
                         { authorization: 'Bearer ' }]) {
    const r = await fetch(url, { method: 'POST', body,
                                 headers: { 'content-type': 'application/json', ...headers } });
    assert.equal(r.status, 401, JSON.stringify(headers));
    assert.match(r.headers.get('content-type'), /application\/json/);
    assert.match(r.headers.get('www-authenticate') || '', /Bearer/);
    assertErrorJSON(await r.json(), 'invalid_api_key');
  }
  // a well-formed key with a wrong secret part, an unknown id, garbage
  const real = await createKey({ name: 'wrong-part' });
  const tampered = real.secret.slice(0, -2) + (real.secret.endsWith('AA') ? 'BB' : 'AA');
  for (const k of [tampered, 'hp-k000000000000.' + 'A'.repeat(43), 'sk-not-a-hotpath-key',
                   'hp-', 'x'.repeat(4000)]) {
    const e = await rejects(chat(client(k), 'chat'), OpenAI.AuthenticationError, 401);
    assert.equal(e.code, 'invalid_api_key');
    assertErrorJSON({ error: e.error });
  }
  // the real key works, so the 401s above were about the key alone
  const ok = await chat(client(real.secret), 'chat');
  assert.equal(ok.choices[0].message.content, 'w1 w2 w3 w4 w5 w6 w7 w8');
});

test('keys_401_revoked_by_cli_while_running', { skip }, async () => {
  const out = keysCli(['create', '--name', 'cli-key', '--rpm', '100']);
  const id = out.match(/^id: (\S+)$/m)[1];
  const secret = out.match(/^secret: (\S+)$/m)[1];
  secrets.add(secret);
  const c = client(secret);
  const r = await chat(c, 'chat');
  assert.equal(r.usage.completion_tokens, 8);
  keysCli(['revoke', id]);
  // the very next request, with no wait
  const e = await rejects(chat(c, 'chat'), OpenAI.AuthenticationError, 401);
  assert.equal(e.code, 'invalid_api_key');
  const row = JSON.parse(keysCli(['list', '--json'])).find((k) => k.id === id);
  assert.equal(row.revoked, true);
  assert.equal((await keyRow(id)).revoked, true);
});

test('keys_models_retrieve_sdk', { skip }, async () => {
  // models.retrieve() (GET /v1/models/{id}) is the route's entry of the
  // /v1/models list, 404 model_not_found for a name no route has, and
  // needs a key as the list does
  const k = await createKey({ name: 'models-retrieve' });
  const c = client(k.secret);
  const list = (await c.models.list()).data;
  for (const id of ['chat', 'slow']) {
    const m = await c.models.retrieve(id);
    assert.deepEqual({ ...m }, { ...list.find((e) => e.id === id) });
    assert.equal(m.object, 'model');
  }
  const e = await rejects(c.models.retrieve('gpt-4o'), OpenAI.NotFoundError, 404);
  assert.equal(e.code, 'model_not_found');
  assert.match(e.message, /gpt-4o/);
  await rejects(client('sk-not-a-hotpath-key').models.retrieve('chat'),
                OpenAI.AuthenticationError, 401);
  const r = await fetch(`${gw.v1}/models/chat`, { method: 'POST', body: '{}',
                        headers: { authorization: `Bearer ${k.secret}` } });
  assert.equal(r.status, 405);
  assert.equal(r.headers.get('allow'), 'GET, HEAD');
});

/* ---- 2. routes ------------------------------------------------------------ */

test('keys_403_route_outside_key', { skip }, async () => {
  const k = await createKey({ name: 'chat-only', routes: ['chat'] });
  const c = client(k.secret);
  assert.equal((await chat(c, 'chat', { max_tokens: 3 })).choices[0].finish_reason, 'length');
  for (const model of ['other', 'slow']) {
    const e = await rejects(chat(c, model), OpenAI.PermissionDeniedError, 403);
    assert.equal(e.code, 'model_not_allowed');
    assert.equal(e.param, 'model');
    assert.match(e.message, new RegExp(model));
  }
  // streamed requests are refused the same way, before any byte streams
  await rejects(chat(c, 'other', { stream: true }), OpenAI.PermissionDeniedError, 403);
  // a key without routes may use every route
  const all = await createKey({ name: 'all-routes' });
  assert.equal((await chat(client(all.secret), 'other')).model !== undefined, true);
});

/* ---- 3. budgets under concurrency ------------------------------------------ */

/* Fire n identical requests at once; returns {ok: [responses], limited:
 * [errors]} and fails on any other outcome. */
async function burst(secret, n, params) {
  const c = client(secret);
  const res = await Promise.allSettled(
    Array.from({ length: n }, () => c.chat.completions.create(params)));
  const ok = [];
  const limited = [];
  for (const r of res) {
    if (r.status === 'fulfilled') {
      ok.push(r.value);
      continue;
    }
    const e = r.reason;
    assert.ok(e instanceof OpenAI.RateLimitError, `${e.constructor.name}: ${e.message}`);
    limited.push(e);
  }
  return { ok, limited };
}

/* Ledger rows of key id, once all `want` of them are flushed. */
async function ledgerRows(id, want) {
  let rows = [];
  await H.waitFor(async () => {
    rows = (await gw.usage(100000)).filter((r) => r.key_id === id);
    return rows.length >= want;
  }, 5000, 50);
  assert.equal(rows.length, want, 'one ledger row per admitted request');
  return rows;
}

const WORDS = Array.from({ length: 30 }, (_, i) => `p${i}`).join(' ');
const BUDGET_PARAMS = { model: 'slow', messages: [{ role: 'user', content: WORDS }], max_tokens: 64 };
// what the mock answers: prompt = words + 1, completion = its 64 words
const ACTUAL_TOKENS = 31 + 64;
// what the gateway reserves: body bytes (prompt upper bound) + max_tokens
const WORST_TOKENS = Buffer.byteLength(JSON.stringify(BUDGET_PARAMS)) + 64;

/* Rounds of 50 concurrent requests against a budgeted key until the key
 * is spent; checks after each round that nothing was overspent.
 * spentOf(row) reads the spend from a key listing, cap is the budget,
 * perRequest the real cost of one request, worst its reservation. */
async function budgetRounds(t, key, spentOf, cap, perRequest, worst) {
  let admitted = 0;
  let rounds = 0;
  let roundsWithSuccess = 0;
  for (;;) {
    const before = spentOf(await keyRow(key.id));
    const { ok, limited } = await burst(key.secret, 50, BUDGET_PARAMS);
    rounds++;
    admitted += ok.length;
    t.diagnostic(`round ${rounds}: ${ok.length} admitted, ${limited.length} refused`);
    for (const r of ok) {
      assert.equal(r.usage.prompt_tokens, 31);
      assert.equal(r.usage.completion_tokens, 64);
    }
    for (const e of limited) {
      assert.equal(e.code, 'budget_exceeded');
      assert.equal(e.type, 'insufficient_quota');
      const ra = Number(e.headers.get('retry-after'));
      assert.ok(Number.isInteger(ra) && ra >= 1, `Retry-After ${e.headers.get('retry-after')}`);
    }
    // settled: the listing shows exactly the real spend, within the cap
    const spent = spentOf(await keyRow(key.id));
    assert.ok(spent <= cap + 1e-9, `spent ${spent} > budget ${cap}`);
    assert.ok(Math.abs(spent - admitted * perRequest) < 1e-6,
              `spent ${spent}, want ${admitted} x ${perRequest}`);
    // while a worst case still fits, at least one request gets through
    if (cap - before >= worst - 1e-9) {
      assert.ok(ok.length >= 1, `round ${rounds}: remaining ${cap - before} >= worst ${worst}, none admitted`);
      roundsWithSuccess++;
    } else {
      assert.equal(ok.length, 0, `round ${rounds}: admitted past the budget`);
      break;
    }
    assert.ok(limited.length >= 1 || ok.length === 50);
    assert.ok(rounds < 30, 'budget never ran out');
  }
  return { admitted, rounds, roundsWithSuccess };
}

test('keys_budget_usd_concurrent_never_overspends', { skip }, async (t) => {
  const usd = (t) => (t * PRICE) / 1e6;
  const worst = usd(WORST_TOKENS);
  const perRequest = usd(ACTUAL_TOKENS);
  // 3 worst cases fit; 50 real requests would cost over 5x the budget
  const budget = Number((worst * 3.5).toFixed(6));
  assert.ok(50 * perRequest > budget * 5);
  const key = await createKey({ name: 'usd-budget', budget_usd: budget });
  const res = await budgetRounds(t, key, (k) => k.spent_usd, budget, perRequest, worst);
  assert.ok(res.roundsWithSuccess >= 2, 'the remainder of the budget was used again');
  // the ledger agrees with the key's spend and holds no refused request
  const rows = await ledgerRows(key.id, res.admitted);
  const sum = rows.reduce((s, r) => s + r.cost_usd, 0);
  assert.ok(sum <= budget + 1e-9, `ledger sum ${sum} > ${budget}`);
  assert.ok(Math.abs(sum - (await keyRow(key.id)).spent_usd) < 1e-6);
  for (const r of rows) assert.equal(r.status, 200);
  // CLI listing agrees too
  const cli = JSON.parse(keysCli(['list', '--json'])).find((k) => k.id === key.id);
  assert.ok(cli.spent_usd <= budget + 1e-9);
});

test('keys_budget_tokens_concurrent_never_overspends', { skip }, async (t) => {
  const budget = Math.floor(WORST_TOKENS * 3.5);
  assert.ok(50 * ACTUAL_TOKENS > budget * 5);
  const key = await createKey({ name: 'token-budget', budget_tokens: budget });
  const res = await budgetRounds(t, key, (k) => k.spent_tokens, budget, ACTUAL_TOKENS,
                                 WORST_TOKENS);
  assert.ok(res.roundsWithSuccess >= 2, 'the remainder of the budget was used again');
  const rows = await ledgerRows(key.id, res.admitted);
  const sum = rows.reduce((s, r) => s + r.prompt_tokens + r.completion_tokens, 0);
  assert.ok(sum <= budget, `ledger tokens ${sum} > ${budget}`);
  assert.equal(sum, (await keyRow(key.id)).spent_tokens);
});

test('keys_budget_injects_max_tokens_upstream', { skip }, async () => {
  // a budgeted key without max_tokens: 4096 is reserved and sent upstream
  const budgeted = await createKey({ name: 'inject', budget_tokens: 100000 });
  await client(budgeted.secret).chat.completions.create({
    model: 'chat', messages: [{ role: 'user', content: 'hi' }] });
  let st = await fast.stats();
  assert.equal(st.last_request.max_tokens, 4096);
  // a worst case above the whole budget can never pass: 400 naming the
  // reservation (not a 429 that waiting cannot cure), nothing upstream
  const small = await createKey({ name: 'inject-small', budget_tokens: 1000 });
  const before = (await fast.stats()).requests;
  const e = await rejects(client(small.secret).chat.completions.create({
    model: 'chat', messages: [{ role: 'user', content: 'hi' }] }), OpenAI.BadRequestError, 400);
  assert.equal(e.code, 'request_exceeds_budget');
  assert.match(e.message, /max_tokens 4096 x n 1/);
  assert.equal((await fast.stats()).requests, before);
  // n multiplies the reservation: 4 x 200 > 500 although 200 alone fits
  const nkey = await createKey({ name: 'n-budget', budget_tokens: 500 });
  const en = await rejects(client(nkey.secret).chat.completions.create({
    model: 'chat', n: 4, max_tokens: 200,
    messages: [{ role: 'user', content: 'hi' }] }), OpenAI.BadRequestError, 400);
  assert.match(en.message, /max_tokens 200 x n 4/);
  await client(nkey.secret).chat.completions.create({
    model: 'chat', max_tokens: 200, messages: [{ role: 'user', content: 'hi' }] });
  // without a budget nothing is injected
  const free = await createKey({ name: 'no-budget' });
  await client(free.secret).chat.completions.create({
    model: 'chat', messages: [{ role: 'user', content: 'hi' }] });
  st = await fast.stats();
  assert.equal(st.last_request.max_tokens, undefined);
});

/* ---- 4. rate limits ------------------------------------------------------- */

test('keys_rpm_sixth_request_429', { skip }, async () => {
  const key = await createKey({ name: 'rpm5', rpm: 5 });
  const c = client(key.secret);
  for (let i = 0; i < 5; i++) await chat(c, 'chat');
  const e = await rejects(chat(c, 'chat'), OpenAI.RateLimitError, 429);
  assert.equal(e.code, 'rate_limit_exceeded');
  assert.match(e.message, /5 requests per minute/);
  const ra = Number(e.headers.get('retry-after'));
  assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= 60, `Retry-After ${ra}`);
  assertErrorJSON({ error: e.error }, 'rate_limit_exceeded');
  // a refused request does not count: still refused, nothing reached upstream
  await rejects(chat(c, 'chat'), OpenAI.RateLimitError, 429);
  // other keys are not affected
  const other = await createKey({ name: 'rpm-other', rpm: 5 });
  await chat(client(other.secret), 'chat');
});

test('keys_tpm_429_once_window_tokens_reach_limit', { skip }, async () => {
  const tpm = 50;
  const key = await createKey({ name: 'tpm50', tpm });
  const c = client(key.secret);
  let used = 0;
  let last = 0;
  let n = 0;
  for (;;) {
    assert.ok(n < 20, 'TPM never limited');
    let r;
    try {
      r = await chat(c, 'chat');
    } catch (e) {
      assert.ok(e instanceof OpenAI.RateLimitError, e.message);
      assert.equal(e.code, 'rate_limit_exceeded');
      assert.match(e.message, /tokens per minute/);
      assert.ok(Number(e.headers.get('retry-after')) >= 1);
      break;
    }
    n++;
    last = r.usage.total_tokens;
    used += last;
  }
  // refused only once the window held the limit, not before
  assert.ok(used >= tpm, `refused at ${used} < ${tpm}`);
  assert.ok(used - last < tpm, `admitted at ${used - last} >= ${tpm}`);
});

/* ---- 5. admin API ---------------------------------------------------------- */

test('admin_off_without_admin_key', { skip }, async () => {
  for (const [m, p, b] of [['GET', '/admin/keys'], ['POST', '/admin/keys', { name: 'x' }],
                           ['GET', '/admin/usage'], ['DELETE', '/admin/keys/k000000000000']]) {
    for (const key of [ADMIN, '', null]) {
      const r = await admin(m, p, b, key, gwOff);
      assert.equal(r.status, 403, `${m} ${p}: ${r.text}`);
      assertErrorJSON(r.body, 'admin_disabled');
    }
  }
  // and nothing was created
  const rows = JSON.parse(execFileSync(H.BIN, ['keys', 'list', '--json', '--db',
                                               path.join(gwOff.dir, 'hotpath.db')],
                                       { encoding: 'utf8' }));
  assert.equal(rows.length, 0);
});

test('admin_401_wrong_key', { skip }, async () => {
  const client_key = await createKey({ name: 'not-admin' });
  for (const key of [null, 'wrong', ADMIN + 'x', ADMIN.slice(0, -1), ` ${ADMIN}`,
                     ADMIN.toUpperCase(), client_key.secret]) {
    const r = await admin('GET', '/admin/keys', undefined, key);
    assert.equal(r.status, 401, `key ${JSON.stringify(key)}: ${r.text}`);
    assertErrorJSON(r.body, 'invalid_admin_key');
    assert.ok(!r.text.includes(ADMIN));
  }
  const r = await admin('POST', '/admin/keys', { name: 'x' }, 'wrong');
  assert.equal(r.status, 401);
});

test('admin_keys_create_list_revoke_round_trip', { skip }, async () => {
  const spec = { name: 'round-trip', budget_usd: 1.5, budget_tokens: 1000, rpm: 7,
                 tpm: 900, routes: ['chat', 'other'] };
  const k = await createKey(spec);
  assert.match(k.id, /^k[0-9a-f]+$/);
  assert.ok(k.secret.startsWith(`hp-${k.id}.`));
  assert.equal(k.name, 'round-trip');
  const list = await admin('GET', '/admin/keys');
  assert.equal(list.status, 200);
  assert.equal(list.body.object, 'list');
  const row = list.body.data.find((x) => x.id === k.id);
  assert.deepEqual(
    { name: row.name, budget_usd: row.budget_usd, budget_tokens: row.budget_tokens,
      rpm: row.rpm, tpm: row.tpm, routes: row.routes, revoked: row.revoked,
      spent_usd: row.spent_usd, spent_tokens: row.spent_tokens },
    { ...spec, revoked: false, spent_usd: 0, spent_tokens: 0 });
  // the key works on its routes
  await chat(client(k.secret), 'other');
  // revoke: 200, listed as revoked, 401 at once, revoking again is fine
  const del = await admin('DELETE', `/admin/keys/${k.id}`);
  assert.equal(del.status, 200, del.text);
  assert.deepEqual(del.body, { id: k.id, revoked: true });
  assert.equal((await keyRow(k.id)).revoked, true);
  await rejects(chat(client(k.secret), 'chat'), OpenAI.AuthenticationError, 401);
  assert.equal((await admin('DELETE', `/admin/keys/${k.id}`)).status, 200);
  // the CLI sees the same database
  const cli = JSON.parse(keysCli(['list', '--json'])).find((x) => x.id === k.id);
  assert.equal(cli.revoked, true);
});

test('admin_list_has_no_secrets_or_hashes', { skip }, async () => {
  await createKey({ name: 'listed' });
  const r = await admin('GET', '/admin/keys');
  assert.equal(r.status, 200);
  assert.ok(r.body.data.length >= 2);
  for (const s of secrets) {
    assert.ok(!r.text.includes(s), 'listing holds a secret');
    if (s.startsWith('hp-')) assert.ok(!r.text.includes(s.split('.')[1]));
  }
  const allowed = new Set(['id', 'name', 'created', 'revoked', 'budget_usd', 'spent_usd',
                           'budget_tokens', 'spent_tokens', 'rpm', 'tpm', 'routes']);
  for (const row of r.body.data) {
    for (const [f, v] of Object.entries(row)) {
      assert.ok(allowed.has(f), `unexpected field ${f}`);
      if (typeof v === 'string') assert.ok(!/^[0-9a-f]{32,}$/i.test(v), `${f} looks like a hash`);
    }
  }
  // the ledger carries key ids only
  const u = await admin('GET', '/admin/usage?limit=1000');
  assert.equal(u.status, 200);
  for (const s of secrets) assert.ok(!u.text.includes(s), 'ledger holds a secret');
});

test('admin_bad_bodies_400_naming_field', { skip }, async () => {
  const cases = [
    ['{not json', null],
    ['[]', null],
    ['"a string"', null],
    [{ budget_usd: -1 }, 'budget_usd'],
    [{ budget_usd: '5' }, 'budget_usd'],
    [{ budget_usd: 1e300 }, 'budget_usd'],
    [{ budget_tokens: -5 }, 'budget_tokens'],
    [{ budget_tokens: 1e30 }, 'budget_tokens'],
    [{ budget_tokens: 2.5 }, 'budget_tokens'],
    [{ rpm: 'x' }, 'rpm'],
    [{ rpm: 1e12 }, 'rpm'],
    [{ rpm: 1.5 }, 'rpm'],
    [{ tpm: -1 }, 'tpm'],
    [{ tpm: true }, 'tpm'],
    [{ name: 5 }, 'name'],
    [{ name: 'n'.repeat(300) }, 'name'],
    [{ name: '' }, 'name'],             // a key has a real name or none
    [{ routes: 'chat' }, 'routes'],
    [{ routes: ['nope'] }, 'routes'],
    [{ routes: [5] }, 'routes'],
    [{ budget: 5 }, 'budget'],          // a misspelt field is not ignored
    [{ name: 'ok', rmp: 5 }, 'rmp'],
  ];
  const before = (await admin('GET', '/admin/keys')).body.data.length;
  for (const [body, field] of cases) {
    const r = await admin('POST', '/admin/keys', body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.status} ${r.text}`);
    assertErrorJSON(r.body);
    if (field) {
      assert.ok(r.body.error.message.includes(field) || r.body.error.param === field,
                `${JSON.stringify(body).slice(0, 80)}: ${r.text}`);
      assert.ok(!('secret' in r.body));
    }
  }
  assert.equal((await admin('GET', '/admin/keys')).body.data.length, before,
               'no key was created by a bad body');
  // usage limits
  for (const q of ['0', '-1', 'abc', '100001', '']) {
    const r = await admin('GET', `/admin/usage?limit=${q}`);
    assert.equal(r.status, 400, `limit=${q}: ${r.text}`);
    assert.equal(r.body.error.param, 'limit');
  }
  // methods
  const put = await admin('PUT', '/admin/keys', {});
  assert.equal(put.status, 405);
  assert.match(put.headers.get('allow'), /GET/);
});

test('admin_delete_unknown_404', { skip }, async () => {
  for (const id of ['k000000000000', 'nope', 'x'.repeat(500), '%00', "1' OR '1'='1"]) {
    const r = await admin('DELETE', `/admin/keys/${encodeURIComponent(id)}`);
    assert.equal(r.status, 404, `${id}: ${r.text}`);
    assertErrorJSON(r.body);
  }
  assert.equal((await admin('GET', '/admin/nothing')).status, 404);
});

/* ---- 6. secrets never logged ----------------------------------------------- */

test('keys_secrets_never_logged', { skip }, async () => {
  // the upstream key reaches the upstream, the client's key does not
  const k = await createKey({ name: 'log-check' });
  await chat(client(k.secret), 'chat');
  const st = await fast.stats();
  assert.equal(st.last_headers.authorization, `Bearer ${UPKEY}`);
  // give the gateway something to log: an upstream that refuses
  // connections, a wrong key, a bad admin call
  const e = await chat(client(k.secret), 'dead').catch((x) => x);
  assert.ok(e instanceof OpenAI.APIError && e.status >= 500, String(e));
  await chat(client(k.secret + 'x'), 'chat').catch(() => {});
  await admin('GET', '/admin/keys', undefined, `${ADMIN}-wrong`);
  await H.sleep(700); // a ledger flush, so any flush-time message is in
  // stopping prints a line: proof that the output is being captured
  await gwOff.stop();
  const text = outputs.map((f) => f()).join('\n');
  assert.match(text, /hotpath: stopped/, 'captured the gateway output');
  assert.ok(secrets.size > 8);
  for (const s of secrets) {
    assert.ok(!text.includes(s), `a secret (${s.slice(0, 6)}...) appears in the gateway output`);
    if (s.startsWith('hp-')) assert.ok(!text.includes(s.split('.')[1]));
  }
});
