// openai.test.mjs: hotpath serve as the official `openai` npm SDK (pinned
// 6.x in package.json) sees it: completions and chat, streamed and not,
// golden text, usage, finish reasons, clean stream ends, error classes.
//
// Starts its own server on a free loopback port (--port 0) with the real
// stories260K model and always kills it. Skips when the model or the SDK
// (run `npm ci` in tests/node) is absent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const SHARED = process.env.HOTPATH_SHARED || path.join(here, '..', '..', '..', 'shared');
const BIN = process.env.HOTPATH_BIN || 'hotpath';
const MODEL = path.join(SHARED, 'models', 'stories260K.gguf');
const GOLDEN = path.join(SHARED, 'models', 'golden');

let OpenAI = null;
try {
  OpenAI = (await import('openai')).default;
} catch {
  OpenAI = null;
}
const skip = !existsSync(MODEL)
  ? `model ${MODEL} not found`
  : !OpenAI ? 'openai SDK not installed (npm ci in tests/node)' : false;

let server = null;
let port = 0;
let client = null;

function startServer() {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, ['serve', '-m', MODEL, '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`no listening line: ${out} ${err}`)), 30000);
    p.stderr.on('data', (d) => { err += d; });
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/^hotpath: serving .* on http:\/\/127\.0\.0\.1:(\d+)\n/m);
      if (m) {
        clearTimeout(timer);
        resolve({ proc: p, port: Number(m[1]) });
      }
    });
    p.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited ${code}: ${err}`));
    });
  });
}

function golden(k) {
  let prompt = readFileSync(path.join(GOLDEN, `stories260K_t0_n100_prompt${k}.prompt`), 'utf8');
  if (prompt.endsWith('\n')) prompt = prompt.slice(0, -1);
  const txt = readFileSync(path.join(GOLDEN, `stories260K_t0_n100_prompt${k}.txt`), 'utf8');
  assert.ok(txt.startsWith(prompt));
  return { prompt, want: txt.slice(prompt.length, -1) };
}

before(async () => {
  if (skip) return;
  const s = await startServer();
  server = s.proc;
  port = s.port;
  client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0 });
});

after(() => {
  if (server) {
    server.removeAllListeners('exit');
    server.kill('SIGTERM');
  }
});

async function modelId() {
  const list = await client.models.list();
  const ids = [];
  for await (const m of list) ids.push(m);
  assert.equal(ids.length, 1);
  assert.equal(ids[0].object, 'model');
  assert.equal(ids[0].owned_by, 'hotpath');
  return ids[0].id;
}

test('node_models_lists_served_model', { skip }, async () => {
  const id = await modelId();
  assert.ok(id.length > 0);
});

test('node_completions_golden_non_streamed_and_streamed', { skip }, async () => {
  const model = await modelId();
  for (const k of [1, 2, 3]) {
    const { prompt, want } = golden(k);
    const probe = await client.completions.create({ model, prompt, max_tokens: 1, temperature: 0 });
    const nPrompt = probe.usage.prompt_tokens - 1; // without BOS
    const max_tokens = 100 - nPrompt;
    const r = await client.completions.create({ model, prompt, max_tokens, temperature: 0 });
    assert.equal(r.object, 'text_completion');
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].text, want);
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.equal(r.usage.completion_tokens, max_tokens);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);

    const stream = await client.completions.create({
      model, prompt, max_tokens, temperature: 0, stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish = null;
    let usage = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text += c.text;
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    assert.equal(text, want);
    assert.equal(finish, 'length');
    assert.deepEqual(usage, r.usage);
  }
});

test('node_chat_non_streamed_and_streamed_agree', { skip }, async () => {
  const model = await modelId();
  const messages = [
    { role: 'system', content: 'You tell short stories.' },
    { role: 'user', content: 'Tell me a story about a cat.' },
  ];
  const r = await client.chat.completions.create({ model, messages, max_tokens: 40, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  const msg = r.choices[0].message;
  assert.equal(msg.role, 'assistant');
  assert.equal(typeof msg.content, 'string');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);

  const stream = await client.chat.completions.create({
    model, messages, max_tokens: 40, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  let content = '';
  let role = null;
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.role) role = c.delta.role;
      if (c.delta.content) content += c.delta.content;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(role, 'assistant');
  assert.equal(content, msg.content);
  assert.equal(finish, r.choices[0].finish_reason);
  assert.deepEqual(usage, r.usage);

  // the SDK's stream helper accumulates the same message
  const runner = client.chat.completions.stream({ model, messages, max_tokens: 40, temperature: 0 });
  const final = await runner.finalChatCompletion();
  assert.equal(final.choices[0].message.content, msg.content);
});

test('node_stream_ends_with_done_literally', { skip }, async () => {
  for (const [p, body] of [
    ['/v1/completions', { prompt: 'Once upon a time', max_tokens: 5, stream: true }],
    ['/v1/chat/completions', { messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5, stream: true }],
  ]) {
    const res = await fetch(`http://127.0.0.1:${port}${p}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    const text = await res.text();
    assert.ok(text.endsWith('data: [DONE]\n\n'), JSON.stringify(text.slice(-40)));
    assert.equal(text.indexOf('data: [DONE]'), text.length - 'data: [DONE]\n\n'.length);
  }
});

test('node_errors_map_to_sdk_classes', { skip }, async () => {
  await assert.rejects(
    client.completions.create({ model: 'no-such-model', prompt: 'x', max_tokens: 1 }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found',
  );
  const model = await modelId();
  await assert.rejects(
    client.chat.completions.create({ model, messages: [], max_tokens: 1 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages',
  );
  await assert.rejects(
    client.completions.create({ model, prompt: 'x', max_tokens: 1, temperature: 3 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature',
  );
});
