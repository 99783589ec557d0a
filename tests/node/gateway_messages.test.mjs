// gateway_messages.test.mjs: the gateway's POST /v1/messages front door as
// the official Anthropic TypeScript SDK (`@anthropic-ai/sdk`, pinned in
// package.json, maxRetries 0) sees it: replies, stop reasons and usage;
// streams (text deltas, finalMessage equal to the non-streamed message);
// routes to an OpenAI-compatible upstream, an Anthropic upstream and a
// local model (same temperature-0 text as /v1/chat/completions gives);
// system prompts and tool rounds translated into the OpenAI body the
// upstream gets; errors in Anthropic's shape and the SDK's error classes;
// keys (Authorization: Bearer, as this SDK sends apiKey, and x-api-key);
// fallback before the first byte; an `event: error` after it; cache hits
// (streamed replay too); and ledger rows equal streamed and not.
//
// Every process (mocklabs, gateways) is started here on a free loopback
// port via gwharness.mjs and killed at the end, pass or fail. Skips when
// mocklab or the SDK is absent; the local-model case skips when
// stories260K.gguf is absent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as h from './gwharness.mjs';

let Anthropic = null;
try {
  Anthropic = (await import('@anthropic-ai/sdk')).default;
} catch {
  Anthropic = null;
}
const skip = h.skipReason() ||
  (!Anthropic ? '@anthropic-ai/sdk not installed (npm ci in tests/node)' : false);
const skipModel = skip || (!existsSync(h.MODEL) ? `model ${h.MODEL} not found` : false);

const ADMIN = `adm-msg-${randomBytes(12).toString('hex')}`;
const WORDS8 = 'w1 w2 w3 w4 w5 w6 w7 w8';   // mocklab's natural reply
const MSGS = [{ role: 'user', content: 'say something nice' }];   // 3 words: 4 prompt tokens
const FALLBACK_ON = [429, 500, 502, 503, 504, 'timeout', 'connect'];

const M = {};       // mocklabs by role
let gw = null;      // the main gateway (no cache, no keys)
let client = null;

function mkClient(g, opts = {}) {
  return new Anthropic({ baseURL: g.base, apiKey: 'unused', maxRetries: 0, timeout: 20000, ...opts });
}

/* A route through one target with the shared fallback. */
function fbRoute(model, upstream, target, extra = {}) {
  return {
    model,
    targets: [{ upstream, model: target }],
    fallback: [{ upstream: 'fb', model: 'fb' }],
    fallback_on: FALLBACK_ON,
    timeouts: { connect_ms: 1000, first_token_ms: 300, total_ms: 10000 },
    ...extra,
  };
}

const FB_ROUTES = {
  'fb-500': ['oa', 'fault-500'], 'fb-429': ['oa', 'fault-429'],
  'fb-cut': ['oa', 'fault-cut-0'], 'fb-stall': ['oa', 'fault-stall-0'],
  'fb-malformed': ['oa', 'fault-malformed-0'],
  'fb-anth-500': ['an', 'fault-500'], 'fb-anth-cut': ['an', 'fault-cut-0'],
};

before(async () => {
  if (skip) return;
  const [oa, an, fb] = await Promise.all([
    h.startMock(['--cached-tokens', '2']),
    h.startMock(['--cached-tokens', '1']),
    h.startMock([]),
  ]);
  Object.assign(M, { oa, an, fb });
  gw = await h.startGateway({
    upstreams: [
      { name: 'oa', kind: 'openai', base_url: oa.v1 },
      { name: 'an', kind: 'anthropic', base_url: an.base },
      { name: 'fb', kind: 'openai', base_url: fb.v1 },
    ],
    routes: [
      { model: 'oa', targets: [{ upstream: 'oa', model: 'm-oa' }] },
      { model: 'anth', targets: [{ upstream: 'an', model: 'm-anth' }] },
      { model: 'u-oa', targets: [{ upstream: 'oa', model: 'u-oa' }] },
      { model: 'u-anth', targets: [{ upstream: 'an', model: 'u-anth' }] },
      { model: 'only-429', targets: [{ upstream: 'oa', model: 'fault-429' }] },
      { model: 'only-500', targets: [{ upstream: 'oa', model: 'fault-500' }] },
      ...Object.entries(FB_ROUTES).map(([r, [u, t]]) => fbRoute(r, u, t)),
      fbRoute('mid-cut', 'oa', 'fault-cut-3'),
    ],
  }, { adminKey: ADMIN });
  client = mkClient(gw);
});

after(async () => {
  await h.stopAll();
});

/* ---- helpers ---------------------------------------------------------------- */

/* Non-streamed create(): {msg, target, cache, route}. */
async function create(c, params) {
  const { data, response } = await c.messages
    .create({ messages: MSGS, max_tokens: 64, ...params }).withResponse();
  return { msg: data, target: response.headers.get('x-hotpath-target'),
           cache: response.headers.get('x-hotpath-cache'),
           route: response.headers.get('x-hotpath-route') };
}

/* create({stream: true}) through the SDK: {text, events, target, cache}. */
async function createStream(c, params) {
  const { data: stream, response } = await c.messages
    .create({ messages: MSGS, max_tokens: 64, ...params, stream: true }).withResponse();
  let text = '';
  const events = [];
  for await (const ev of stream) {
    events.push(ev);
    if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
  }
  return { text, events, target: response.headers.get('x-hotpath-target'),
           cache: response.headers.get('x-hotpath-cache') };
}

/* client.messages.stream(): {text (from 'text' events), final}. */
async function helperStream(c, params) {
  const s = c.messages.stream({ messages: MSGS, max_tokens: 64, ...params });
  let text = '';
  s.on('text', (t) => { text += t; });
  const final = await s.finalMessage();
  return { text, final };
}

/* A raw POST: {status, headers, body, json, events [{event, data}]}. */
async function raw(g, body, headers = {}) {
  const r = await fetch(`${g.base}/v1/messages`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { json = null; }
  const events = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    const ev = block.match(/^event: (.*)$/m);
    const data = block.match(/^data: (.*)$/m);
    if (ev && data) events.push({ event: ev[1], data: JSON.parse(data[1]) });
  }
  return { status: r.status, headers: r.headers, body: text, json, events };
}

/* Usage as a streamed and a non-streamed message both carry it. */
function usageCore(u) {
  return { input_tokens: u.input_tokens, output_tokens: u.output_tokens,
           cache_read_input_tokens: u.cache_read_input_tokens ?? 0 };
}

/* The parts of a message a streamed finalMessage() must share with the
 * non-streamed one (the id differs per request). */
function msgCore(m) {
  return { type: m.type, role: m.role, model: m.model, content: m.content,
           stop_reason: m.stop_reason, stop_sequence: m.stop_sequence,
           usage: usageCore(m.usage) };
}

/* An Anthropic error body: {type: "error", error: {type, message}}. */
function assertAnthError(json, type) {
  assert.ok(json && json.type === 'error', `not an Anthropic error: ${JSON.stringify(json)}`);
  assert.equal(json.error.type, type);
  assert.equal(typeof json.error.message, 'string');
  assert.ok(json.error.message.length > 0);
}

/* ---- 1. non-streamed -------------------------------------------------------- */

test('messages_create_text_stop_reason_and_usage', { skip }, async () => {
  for (const [route, target, cached] of [['oa', 'oa/m-oa', 2], ['anth', 'an/m-anth', 1]]) {
    const r = await create(client, { model: route });
    const m = r.msg;
    assert.equal(r.target, target);
    assert.equal(r.route, route);
    assert.equal(r.cache, 'miss');
    assert.equal(m.type, 'message');
    assert.equal(m.role, 'assistant');
    assert.equal(m.model, route, 'the model field is the route name');
    assert.match(m.id, /^msg_/);
    assert.deepEqual(m.content, [{ type: 'text', text: WORDS8 }]);
    assert.equal(m.stop_reason, 'end_turn');
    assert.equal(m.stop_sequence, null);
    // mocklab: 4 prompt tokens, `cached` of them from its cache
    assert.deepEqual(m.usage, { input_tokens: 4 - cached, cache_creation_input_tokens: 0,
                                cache_read_input_tokens: cached, output_tokens: 8 });

    const l = await create(client, { model: route, max_tokens: 3 });
    assert.deepEqual(l.msg.content, [{ type: 'text', text: 'w1 w2 w3' }]);
    assert.equal(l.msg.stop_reason, 'max_tokens');
    assert.equal(l.msg.usage.output_tokens, 3);
  }
  // max_tokens and stop_sequences reach the upstream in its own dialect
  await create(client, { model: 'oa', max_tokens: 5, stop_sequences: ['w4'], temperature: 0.5, top_p: 0.9 });
  const lr = (await M.oa.stats()).last_request;
  assert.equal(lr.model, 'm-oa');
  assert.equal(lr.max_tokens, 5);
  assert.deepEqual(lr.stop, ['w4']);
  assert.equal(lr.temperature, 0.5);
  assert.equal(lr.top_p, 0.9);
  const s = await create(client, { model: 'anth', stop_sequences: ['w4'] });
  assert.equal(s.msg.content[0].text, 'w1 w2 w3');
  // OpenAI does not say which stop sequence ended a reply: end_turn
  assert.equal(s.msg.stop_reason, 'end_turn');
  assert.deepEqual((await M.an.stats()).last_request.stop_sequences, ['w4']);
});

/* ---- 2. streamed ------------------------------------------------------------- */

test('messages_stream_text_deltas_and_final_message_match_create', { skip }, async () => {
  for (const route of ['oa', 'anth']) {
    for (const max_tokens of [64, 3]) {
      const what = `${route} max_tokens=${max_tokens}`;
      const want = (await create(client, { model: route, max_tokens })).msg;
      const wantText = want.content[0].text;

      const a = await helperStream(client, { model: route, max_tokens });
      assert.equal(a.text, wantText, what);
      assert.deepEqual(msgCore(a.final), msgCore(want), what);
      assert.match(a.final.id, /^msg_/);

      const b = await createStream(client, { model: route, max_tokens });
      assert.equal(b.text, wantText, what);
      assert.equal(b.target, route === 'oa' ? 'oa/m-oa' : 'an/m-anth', what);
      const types = b.events.map((e) => e.type);
      const nDeltas = max_tokens === 3 ? 3 : 8;
      assert.deepEqual(types, ['message_start', 'content_block_start',
                               ...Array(nDeltas).fill('content_block_delta'),
                               'content_block_stop', 'message_delta', 'message_stop'], what);
      assert.deepEqual(b.events.filter((e) => e.type === 'content_block_delta').map((e) => e.delta.text),
                       wantText.split(' ').map((w, i) => (i ? ` ${w}` : w)), what);
      const md = b.events.find((e) => e.type === 'message_delta');
      assert.equal(md.delta.stop_reason, want.stop_reason, what);
      assert.deepEqual(usageCore(md.usage), usageCore(want.usage), what);
      assert.equal(b.events[0].message.model, route);
    }
  }
  // the wire: named events, a ping after message_start, nothing OpenAI-shaped
  const x = await raw(gw, { model: 'oa', max_tokens: 2, stream: true, messages: MSGS });
  assert.equal(x.status, 200);
  assert.match(x.headers.get('content-type'), /^text\/event-stream/);
  assert.deepEqual(x.events.map((e) => e.event),
                   ['message_start', 'ping', 'content_block_start', 'content_block_delta',
                    'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
  for (const e of x.events) assert.equal(e.data.type, e.event);
  assert.doesNotMatch(x.body, /\[DONE\]|chat\.completion/);
  // the upstream was asked for usage, which the Messages stream always ends with
  const lr = (await M.oa.stats()).last_request;
  assert.equal(lr.stream, true);
  assert.equal(lr.stream_options?.include_usage, true);
});

/* ---- 3. system prompts and tool rounds ---------------------------------------- */

const TOOLS = [{
  name: 'get_weather', description: 'Weather for a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
}];
const TOOL_CONVO = [
  { role: 'user', content: 'What is the weather in Paris?' },
  { role: 'assistant', content: [
    { type: 'text', text: 'Let me check.' },
    { type: 'tool_use', id: 'toolu_01', name: 'get_weather', input: { city: 'Paris' } },
  ] },
  { role: 'user', content: [
    { type: 'tool_result', tool_use_id: 'toolu_01', content: 'sunny, 21 C' },
    { type: 'text', text: 'And tomorrow?' },
  ] },
];

test('messages_system_and_tool_rounds_reach_an_openai_upstream_translated', { skip }, async () => {
  const r = await create(client, {
    model: 'oa', system: 'You are terse.', messages: TOOL_CONVO, tools: TOOLS,
    tool_choice: { type: 'tool', name: 'get_weather' },
  });
  assert.equal(r.msg.content[0].text, WORDS8);
  const lr = (await M.oa.stats()).last_request;
  assert.deepEqual(lr.messages, [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'What is the weather in Paris?' },
    { role: 'assistant', content: 'Let me check.', tool_calls: [
      { id: 'toolu_01', type: 'function',
        function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
    { role: 'tool', tool_call_id: 'toolu_01', content: 'sunny, 21 C' },
    { role: 'user', content: 'And tomorrow?' },
  ]);
  assert.deepEqual(lr.tools, [{ type: 'function', function: {
    name: 'get_weather', description: 'Weather for a city', parameters: TOOLS[0].input_schema } }]);
  assert.deepEqual(lr.tool_choice, { type: 'function', function: { name: 'get_weather' } });
  assert.equal(lr.max_tokens, 64);

  // system as text blocks; tool_choice any -> required; a turn of only results
  await create(client, {
    model: 'oa', system: [{ type: 'text', text: 'A.' }, { type: 'text', text: 'B.' }],
    messages: TOOL_CONVO.slice(0, 2).concat([{ role: 'user', content: [
      { type: 'tool_result', tool_use_id: 'toolu_01', content: [{ type: 'text', text: 'rain' }] }] }]),
    tools: TOOLS, tool_choice: { type: 'any' },
  });
  const lr2 = (await M.oa.stats()).last_request;
  assert.deepEqual(lr2.messages[0], { role: 'system', content: 'A.\nB.' });
  assert.deepEqual(lr2.messages.at(-1), { role: 'tool', tool_call_id: 'toolu_01', content: 'rain' });
  assert.equal(lr2.messages.length, 4);
  assert.equal(lr2.tool_choice, 'required');
});

test('messages_system_and_tool_rounds_reach_an_anthropic_upstream_intact', { skip }, async () => {
  const r = await create(client, {
    model: 'anth', system: 'You are terse.', messages: TOOL_CONVO, tools: TOOLS,
  });
  assert.equal(r.msg.content[0].text, WORDS8);
  assert.equal(r.target, 'an/m-anth');
  const lr = (await M.an.stats()).last_request;
  assert.equal(lr.model, 'm-anth');
  const sys = typeof lr.system === 'string' ? lr.system : lr.system.map((b) => b.text).join('\n');
  assert.equal(sys, 'You are terse.');
  assert.equal(lr.messages.length, 3);
  assert.equal(lr.messages[0].role, 'user');
  const asst = lr.messages[1];
  assert.equal(asst.role, 'assistant');
  const tu = asst.content.find((b) => b.type === 'tool_use');
  assert.deepEqual({ id: tu.id, name: tu.name, input: tu.input },
                   { id: 'toolu_01', name: 'get_weather', input: { city: 'Paris' } });
  assert.ok(asst.content.some((b) => b.type === 'text' && b.text === 'Let me check.'));
  const tr = lr.messages[2].content.find((b) => b.type === 'tool_result');
  assert.equal(tr.tool_use_id, 'toolu_01');
  const trText = typeof tr.content === 'string' ? tr.content : tr.content.map((b) => b.text).join('');
  assert.equal(trText, 'sunny, 21 C');
  assert.ok(lr.messages[2].content.some((b) => b.type === 'text' && b.text === 'And tomorrow?'));
  assert.equal(lr.tools[0].name, 'get_weather');
  assert.deepEqual(lr.tools[0].input_schema, TOOLS[0].input_schema);
});

/* ---- 4. a local model: the same text as /v1/chat/completions ------------------ */

test('messages_local_model_matches_chat_completions_at_temperature_zero', { skip: skipModel }, async () => {
  const g = await h.startGateway({
    models: [{ name: 'tiny', path: h.MODEL, parallel: 2, threads: 1 }],
    routes: [{ model: 'local', targets: [{ local: 'tiny' }] }],
  });
  const c = mkClient(g);
  const convos = [
    { system: undefined, messages: [{ role: 'user', content: 'Tell me a story' }] },
    { system: 'You tell stories.', messages: [
      { role: 'user', content: 'Once upon a time' },
      { role: 'assistant', content: 'there was a cat.' },
      { role: 'user', content: 'What did the cat do?' }] },
  ];
  for (const [i, cv] of convos.entries()) {
    const oaiMsgs = (cv.system ? [{ role: 'system', content: cv.system }] : []).concat(cv.messages);
    const r = await fetch(`${g.v1}/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'local', messages: oaiMsgs, max_tokens: 16, temperature: 0 }),
    });
    assert.equal(r.status, 200);
    const want = await r.json();
    const wantText = want.choices[0].message.content;
    assert.ok(wantText.length > 0);
    const p = { model: 'local', messages: cv.messages, max_tokens: 16, temperature: 0,
                ...(cv.system ? { system: cv.system } : {}) };
    const m = await create(c, p);
    assert.equal(m.target, 'local/tiny');
    assert.equal(m.msg.content[0].text, wantText, `conversation ${i} non-streamed`);
    assert.equal(m.msg.stop_reason, want.choices[0].finish_reason === 'length' ? 'max_tokens' : 'end_turn');
    assert.equal(m.msg.usage.output_tokens, want.usage.completion_tokens);
    assert.equal(m.msg.usage.input_tokens + m.msg.usage.cache_read_input_tokens, want.usage.prompt_tokens);
    const s = await helperStream(c, p);
    assert.equal(s.text, wantText, `conversation ${i} streamed`);
    assert.deepEqual(msgCore(s.final), msgCore(m.msg), `conversation ${i} finalMessage`);
  }
  await g.stop();
});

/* ---- 5. errors ----------------------------------------------------------------- */

test('messages_errors_come_back_in_anthropic_shape_and_sdk_classes', { skip }, async () => {
  const cases = [
    ['unknown route', { model: 'no-such-route', max_tokens: 8, messages: MSGS },
     Anthropic.NotFoundError, 404, 'not_found_error', /no-such-route/],
    ['missing max_tokens', { model: 'oa', messages: MSGS },
     Anthropic.BadRequestError, 400, 'invalid_request_error', /max_tokens/],
    ['image block', { model: 'oa', max_tokens: 8, messages: [{ role: 'user', content: [
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } }] }] },
     Anthropic.BadRequestError, 400, 'invalid_request_error', /image blocks are not supported/],
    ['document block', { model: 'oa', max_tokens: 8, messages: [{ role: 'user', content: [
      { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'x' } }] }] },
     Anthropic.BadRequestError, 400, 'invalid_request_error', /document blocks are not supported/],
    ['server tool', { model: 'oa', max_tokens: 8, messages: MSGS,
                      tools: [{ type: 'web_search_20250305', name: 'web_search' }] },
     Anthropic.BadRequestError, 400, 'invalid_request_error', /tools\[0\]\.type/],
    ['upstream 429, no fallback', { model: 'only-429', max_tokens: 8, messages: MSGS },
     Anthropic.RateLimitError, 429, 'rate_limit_error', /./],
    ['upstream 500, no fallback', { model: 'only-500', max_tokens: 8, messages: MSGS },
     Anthropic.InternalServerError, 500, 'api_error', /mock fault/],
  ];
  const n0 = (await M.oa.stats()).requests;
  let upstreamCalls = 0;
  for (const [what, body, cls, status, type, re] of cases) {
    if (body.model.startsWith('only-')) upstreamCalls++;
    for (const stream of [false, true]) {
      await assert.rejects(client.messages.create({ ...body, stream }), (e) => {
        assert.ok(e instanceof cls, `${what}: got ${e?.constructor?.name}: ${e}`);
        assert.equal(e.status, status, what);
        assertAnthError(e.error, type);
        assert.match(e.error.error.message, re, what);
        return true;
      });
    }
    const x = await raw(gw, body);
    assert.equal(x.status, status, what);
    assert.match(x.headers.get('content-type'), /application\/json/);
    assertAnthError(x.json, type);
  }
  // only the routed ones reached the upstream (twice each plus the raw one)
  assert.equal((await M.oa.stats()).requests, n0 + 3 * upstreamCalls);
  // not even JSON
  const bad = await raw(gw, '{"model": ');
  assert.equal(bad.status, 400);
  assertAnthError(bad.json, 'invalid_request_error');
  // the Messages endpoints the gateway does not serve answer in the same shape
  await assert.rejects(client.messages.countTokens({ model: 'oa', messages: MSGS }), (e) => {
    assert.ok(e instanceof Anthropic.NotFoundError, `count_tokens: got ${e?.constructor?.name}: ${e}`);
    assertAnthError(e.error, 'not_found_error');
    assert.match(e.error.error.message, /count_tokens/);
    return true;
  });
  const get = await fetch(`${gw.base}/v1/messages`);
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST');
  assert.equal((await get.json()).type, 'error');
  // a user turn may not carry tool_use
  const tu = await raw(gw, { model: 'oa', max_tokens: 8, messages: [{ role: 'user', content: [
    { type: 'tool_use', id: 't', name: 'n', input: {} }] }] });
  assert.equal(tu.status, 400);
  assert.match(tu.json.error.message, /tool_use blocks are not allowed in user turns/);
});

/* ---- 6. keys ----------------------------------------------------------------- */

test('messages_keys_missing_wrong_bearer_and_x_api_key', { skip }, async () => {
  const g = await h.startGateway({
    upstreams: [{ name: 'oa', kind: 'openai', base_url: M.oa.v1 }],
    routes: [{ model: 'oa', targets: [{ upstream: 'oa', model: 'm-keyed' }] },
             { model: 'other', targets: [{ upstream: 'oa', model: 'm-other' }] }],
    auth: { require_keys: true },
  }, { adminKey: ADMIN });
  const made = await fetch(`${g.base}/admin/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'messages-client' }),
  });
  assert.equal(made.status, 201);
  const { secret, id } = await made.json();
  assert.ok(secret && id);
  const p = { model: 'oa', max_tokens: 8, messages: MSGS };

  // no key at all (the SDK needs the header explicitly omitted)
  const none = mkClient(g, { apiKey: null, authToken: null, defaultHeaders: { authorization: null } });
  for (const [what, c] of [['missing', none], ['wrong', mkClient(g, { apiKey: 'hp-wrong' })],
                           ['wrong x-api-key', mkClient(g, { apiKey: null, authToken: null,
                             defaultHeaders: { authorization: null, 'x-api-key': 'hp-wrong' } })]]) {
    await assert.rejects(c.messages.create(p), (e) => {
      assert.ok(e instanceof Anthropic.AuthenticationError, `${what}: got ${e?.constructor?.name}: ${e}`);
      assert.equal(e.status, 401);
      assertAnthError(e.error, 'authentication_error');
      return true;
    });
  }
  const x = await raw(g, p);
  assert.equal(x.status, 401);
  assertAnthError(x.json, 'authentication_error');

  // this SDK sends apiKey as "Authorization: Bearer"; x-api-key (what other
  // Anthropic clients send) works too, through the SDK and raw
  const bearer = await create(mkClient(g, { apiKey: secret }), p);
  assert.equal(bearer.msg.content[0].text, WORDS8);
  const xk = await create(mkClient(g, { apiKey: null, authToken: null,
                                         defaultHeaders: { authorization: null, 'x-api-key': secret } }), p);
  assert.equal(xk.msg.content[0].text, WORDS8);
  const lh = (await M.oa.stats()).last_headers;
  assert.ok(!('x-api-key' in lh) && !('authorization' in lh), 'the client key never goes upstream');
  const y = await raw(g, p, { 'x-api-key': secret });
  assert.equal(y.status, 200);
  assert.equal(y.json.content[0].text, WORDS8);
  const rows = (await g.usage(10)).filter((r) => r.status === 200);
  assert.equal(rows.length, 3);
  for (const r of rows) assert.equal(r.key_id, id);

  // a key limited to other routes: 403; one over its RPM: 429 with Retry-After
  const mk = async (spec) => {
    const r = await fetch(`${g.base}/admin/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify(spec),
    });
    const b = await r.json();
    assert.equal(r.status, 201, JSON.stringify(b));
    return b.secret;
  };
  const other = mkClient(g, { apiKey: await mk({ name: 'other-only', routes: ['other'] }) });
  await assert.rejects(other.messages.create(p), (e) => {
    assert.ok(e instanceof Anthropic.PermissionDeniedError, `got ${e?.constructor?.name}: ${e}`);
    assertAnthError(e.error, 'permission_error');
    return true;
  });
  const slow = mkClient(g, { apiKey: await mk({ name: 'rpm1', rpm: 1 }) });
  await create(slow, p);
  await assert.rejects(slow.messages.create(p), (e) => {
    assert.ok(e instanceof Anthropic.RateLimitError, `got ${e?.constructor?.name}: ${e}`);
    assertAnthError(e.error, 'rate_limit_error');
    assert.ok(Number(e.headers.get('retry-after')) >= 1);
    return true;
  });
  assert.ok(!g.stderr().includes(secret) && !g.stdout().includes(secret));
  await g.stop();
});

/* ---- 7. fallback before the first byte ----------------------------------------- */

test('messages_fall_back_on_each_fault_before_the_first_byte', { skip }, async () => {
  for (const route of Object.keys(FB_ROUTES)) {
    const fb0 = (await M.fb.stats()).requests;
    const a = await create(client, { model: route });
    assert.equal(a.target, 'fb/fb', route);
    assert.equal(a.msg.content[0].text, WORDS8, route);
    assert.equal(a.msg.stop_reason, 'end_turn', route);
    assert.equal(a.msg.model, route);
    const b = await createStream(client, { model: route });
    assert.equal(b.target, 'fb/fb', `${route} streamed`);
    assert.equal(b.text, WORDS8, `${route} streamed`);
    assert.equal(b.events.at(-1).type, 'message_stop');
    assert.equal((await M.fb.stats()).requests, fb0 + 2, route);
  }
  const x = await raw(gw, { model: 'fb-500', max_tokens: 8, messages: MSGS, stream: true });
  assert.equal(x.headers.get('x-hotpath-target'), 'fb/fb');
  assert.equal(x.events.filter((e) => e.event === 'message_start').length, 1);
  assert.equal(x.events.at(-1).event, 'message_stop');
});

/* ---- 8. a cut after the first byte ---------------------------------------------- */

test('messages_cut_after_first_byte_ends_with_error_event_and_sdk_raises', { skip }, async () => {
  const fb0 = (await M.fb.stats()).requests;
  const s = client.messages.stream({ model: 'mid-cut', max_tokens: 64, messages: MSGS });
  let text = '';
  s.on('text', (t) => { text += t; });
  await assert.rejects(s.finalMessage(), (e) => {
    assert.ok(e instanceof Anthropic.APIError, `got ${e?.constructor?.name}: ${e}`);
    assert.match(e.message, /mid-stream/);
    return true;
  });
  assert.equal(text, 'w1 w2 w3');

  const { data: stream, response } = await client.messages
    .create({ model: 'mid-cut', max_tokens: 64, messages: MSGS, stream: true }).withResponse();
  assert.equal(response.headers.get('x-hotpath-target'), 'oa/fault-cut-3');
  let err = null;
  let n = 0;
  try {
    for await (const ev of stream) if (ev.type === 'content_block_delta') n++;
  } catch (e) {
    err = e;
  }
  assert.equal(n, 3);
  assert.ok(err instanceof Anthropic.APIError, `stream ended with ${err}`);

  const x = await raw(gw, { model: 'mid-cut', max_tokens: 64, messages: MSGS, stream: true });
  assert.equal(x.status, 200);
  const last = x.events.at(-1);
  assert.equal(last.event, 'error');
  assert.equal(last.data.type, 'error');
  assert.equal(last.data.error.type, 'api_error');
  assert.match(last.data.error.message, /mid-stream/);
  assert.ok(!x.events.some((e) => e.event === 'message_stop' || e.event === 'message_delta'));
  assert.doesNotMatch(x.body, /^data: \{"error":/m, 'no OpenAI-shaped error event');
  assert.equal((await M.fb.stats()).requests, fb0, 'no fallback after the first byte');
});

/* ---- 9. cache -------------------------------------------------------------------- */

test('messages_cache_hits_temperature_zero_and_replays_streams', { skip }, async () => {
  const g = await h.startGateway({
    upstreams: [{ name: 'oa', kind: 'openai', base_url: M.oa.v1 }],
    routes: [{ model: 'cached', targets: [{ upstream: 'oa', model: 'm-cache' }] }],
    cache: { max_mb: 8, ttl_s: 60 },
  }, { adminKey: ADMIN });
  const c = mkClient(g);
  const seen = async () => (await M.oa.stats()).by_model['m-cache'] || 0;
  const n0 = await seen();
  const p = { model: 'cached', temperature: 0, max_tokens: 32,
              messages: [{ role: 'user', content: 'cache me please' }] };
  const r1 = await create(c, p);
  assert.equal(r1.cache, 'miss');
  assert.equal(r1.target, 'oa/m-cache');
  const r2 = await create(c, p);
  assert.equal(r2.cache, 'hit');
  assert.deepEqual(msgCore(r2.msg), msgCore(r1.msg));
  assert.equal(r2.msg.model, 'cached');
  assert.equal(await seen(), n0 + 1, 'the mock saw one request');

  const s = await createStream(c, p);
  assert.equal(s.cache, 'hit');
  assert.equal(s.text, WORDS8);
  assert.equal(s.events.at(-1).type, 'message_stop');
  const h2 = await helperStream(c, p);
  assert.equal(h2.text, WORDS8);
  assert.deepEqual(msgCore(h2.final), msgCore(r1.msg));
  const x = await raw(g, { ...p, stream: true });
  assert.equal(x.headers.get('x-hotpath-cache'), 'hit');
  // a replay sends the stored text in one delta
  assert.deepEqual(x.events.map((e) => e.event),
                   ['message_start', 'ping', 'content_block_start', 'content_block_delta',
                    'content_block_stop', 'message_delta', 'message_stop']);
  assert.equal(x.events[3].data.delta.text, WORDS8);
  const md = x.events.find((e) => e.event === 'message_delta').data;
  assert.equal(md.delta.stop_reason, 'end_turn');
  assert.deepEqual(usageCore(md.usage), usageCore(r1.msg.usage));
  assert.equal(await seen(), n0 + 1);

  // not temperature 0: never cached
  const warm = { ...p, temperature: 0.7 };
  assert.equal((await create(c, warm)).cache, 'miss');
  assert.equal((await createStream(c, warm)).cache, 'miss');
  assert.equal(await seen(), n0 + 3);
  const rows = await g.usage(20);
  assert.equal(rows.filter((r) => r.cache_hit).length, 4);
  await g.stop();
});

/* ---- 10. ledger: the same tokens streamed and not --------------------------------- */

test('messages_ledger_rows_equal_streamed_and_not', { skip }, async () => {
  for (const [route, target, cached] of [['u-oa', 'oa/u-oa', 2], ['u-anth', 'an/u-anth', 1]]) {
    for (const max_tokens of [64, 3]) {
      const what = `${route} max_tokens=${max_tokens}`;
      const ns = await create(client, { model: route, max_tokens });
      const st = await helperStream(client, { model: route, max_tokens });
      assert.deepEqual(msgCore(st.final), msgCore(ns.msg), what);
      const rows = (await gw.usage(50)).filter((r) => r.route === route);
      const [rs, rn] = rows;   // newest first
      assert.equal(rs.stream, true, what);
      assert.equal(rn.stream, false, what);
      for (const r of [rs, rn]) {
        assert.equal(r.status, 200);
        assert.equal(r.target, target);
        assert.equal(r.cache_hit, false);
        assert.equal(r.estimated, false, what);
        assert.equal(r.prompt_tokens, 4, what);
        assert.equal(r.cached_tokens, cached, what);
        assert.equal(r.completion_tokens, max_tokens === 3 ? 3 : 8, what);
      }
      // and what the client was told agrees with the ledger
      assert.equal(ns.msg.usage.input_tokens + ns.msg.usage.cache_read_input_tokens, rn.prompt_tokens);
      assert.equal(ns.msg.usage.output_tokens, rn.completion_tokens);
    }
  }
});
