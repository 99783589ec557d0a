/* tok_bpe.c: BPE over ranked merges (tokenizer.ggml.model = "gpt2", and
 * Hugging Face "BPE" models).
 *
 * Owns the merge table of hp_vocab: a hash map keyed by the pair of token
 * ids, giving the merge's rank (its index in the merges list) and the id of
 * the merged token. Encoding a raw segment (no special tokens in it):
 *   1. optional normalization: NFC (Qwen) through utf8proc, or spaces to
 *      "▁" (Metaspace vocabularies such as Gemma);
 *   2. the pre-tokenizer (tok_pretok.c) cuts the segment into pieces;
 *   3. byte-level vocabularies map every byte of a piece to one symbol, the
 *      token of GPT-2's byte-to-unicode character for it; others start from
 *      one symbol per UTF-8 character, with <0xNN> byte fallback;
 *   4. with ignore_merges (Llama 3) a piece that is itself a token is
 *      emitted whole; otherwise the adjacent pair with the lowest rank is
 *      merged, leftmost first on ties, until no pair has a merge (a binary
 *      heap with lazy deletion of stale pairs keeps long pieces n log n).
 * Read-only after hp_tok__bpe_init, so one vocabulary serves many threads;
 * working memory is per call. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "model/tok_impl.h"

/* ---- GPT-2 byte-to-unicode ---------------------------------------------- */

/* Printable Latin-1 bytes stand for themselves; the other 68 bytes take
 * U+0100 upwards in byte order (0x00-0x20 -> U+0100-U+0120, 0x7F-0xA0 ->
 * U+0121-U+0142, 0xAD -> U+0143), so every byte is a visible character. */
static int32_t byte_cp(int b)
{
    if (b <= 0x20)
        return 0x100 + b;
    if (b >= 0x7F && b <= 0xA0)
        return 0x121 + (b - 0x7F);
    if (b == 0xAD)
        return 0x143;
    return b;
}

/* Inverse: the byte a code point stands for, or -1. */
static int cp_byte(int32_t cp)
{
    if (cp < 0 || cp > 0x143)
        return -1;
    if (cp >= 0x100) {
        if (cp <= 0x120)
            return cp - 0x100;
        if (cp <= 0x142)
            return 0x7F + (cp - 0x121);
        return 0xAD;
    }
    return byte_cp(cp) == cp ? cp : -1;
}

/* Each byte's character as UTF-8 (filled per use: no mutable globals). */
static void byte_table(char map[256][2], uint8_t mlen[256])
{
    for (int b = 0; b < 256; b++)
        mlen[b] = (uint8_t)hp_tok__encode_cp(byte_cp(b), map[b]);
}

/* ---- merge table -------------------------------------------------------- */

static uint32_t pair_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k;
}

/* Slot of key (or the empty slot where it would go). */
static uint32_t merge_slot(const hp_tok__merges *m, uint64_t key)
{
    uint32_t i = pair_hash(key) & m->mask;
    while (m->keys[i] != 0 && m->keys[i] != key)
        i = (i + 1) & m->mask;
    return i;
}

/* Rank of the merge (l, r) and its result in *res; -1 if none. */
static int32_t merge_rank(const hp_vocab *v, int32_t l, int32_t r,
                          int32_t *res)
{
    const hp_tok__merges *m = &v->merges;
    if (m->n == 0 || l < 0 || r < 0)
        return -1;
    uint64_t key = (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1;
    uint32_t i = merge_slot(m, key);
    if (m->keys[i] == 0)
        return -1;
    *res = m->result[i];
    return m->rank[i];
}

hp_err hp_tok__bpe_init(hp_vocab *v, const hp_str *merges,
                        const hp_str *right, int32_t n, hp_errbuf *eb)
{
    hp_tok__merges *m = &v->merges;
    uint32_t slots = 16;
    while (slots < (uint32_t)n * 2u)
        slots <<= 1;
    m->mask = slots - 1;
    m->keys = calloc(slots, sizeof *m->keys);
    m->rank = malloc(sizeof *m->rank * slots);
    m->result = malloc(sizeof *m->result * slots);
    char *buf = malloc(2 * 65536 + 2);
    if (!m->keys || !m->rank || !m->result || !buf) {
        free(buf);
        return hp_errf(eb, HP_ERR_NOMEM, "merges: out of memory");
    }
    for (int32_t i = 0; i < n; i++) {
        const char *a = merges[i].ptr, *b;
        size_t al, bl;
        if (right) {
            al = merges[i].len;
            b = right[i].ptr;
            bl = right[i].len;
        } else {
            /* "left right": the first space separates (byte-level texts
             * have no raw spaces). */
            const char *sp = merges[i].len
                                 ? memchr(a, ' ', merges[i].len)
                                 : NULL;
            if (!sp) {
                free(buf);
                return hp_errf(eb, HP_ERR_FORMAT,
                               "merge %d: no space in '%.*s'", (int)i,
                               (int)(merges[i].len > 40 ? 40
                                                        : merges[i].len),
                               a);
            }
            al = (size_t)(sp - a);
            b = sp + 1;
            bl = merges[i].len - al - 1;
        }
        if (al > 65536 || bl > 65536)
            continue;
        int32_t l = hp_tok__lookup(v, a, al), r = hp_tok__lookup(v, b, bl);
        memcpy(buf, a, al);
        memcpy(buf + al, b, bl);
        int32_t res = hp_tok__lookup(v, buf, al + bl);
        if (l < 0 || r < 0 || res < 0)
            continue; /* names a token the vocabulary lacks */
        uint64_t key = (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1;
        uint32_t s = merge_slot(m, key);
        if (m->keys[s] != 0)
            continue; /* duplicate: the first (lowest rank) wins */
        m->keys[s] = key;
        m->rank[s] = i;
        m->result[s] = res;
        m->n++;
    }
    free(buf);

    char map[256][2];
    uint8_t mlen[256];
    byte_table(map, mlen);
    for (int b = 0; b < 256; b++)
        v->byte_id[b] = v->byte_level ? hp_tok__lookup(v, map[b], mlen[b])
                                      : -1;
    return HP_OK;
}

void hp_tok__bpe_free(hp_vocab *v)
{
    free(v->merges.keys);
    free(v->merges.rank);
    free(v->merges.result);
}

/* ---- encoding ----------------------------------------------------------- */

typedef struct sym {
    int32_t id;        /* token id, -1 = no token (byte fallback) */
    int prev, next;    /* live neighbours, -1 at the ends */
    uint32_t start, len; /* bytes of the piece it covers */
} sym;

typedef struct pair {
    int32_t rank;
    int left, right;   /* symbol indexes */
    int32_t lid, rid, res;
} pair;

/* Per-call working memory, sized for the segment. */
typedef struct work {
    sym *sym;          /* owns */
    pair *heap;        /* owns */
    int heap_n;
    char *mapped;      /* owns: byte-level text of the piece */
    char map[256][2];
    uint8_t mlen[256];
} work;

static bool pair_before(const pair *a, const pair *b)
{
    if (a->rank != b->rank)
        return a->rank < b->rank;
    return a->left < b->left;
}

static void heap_push(work *w, pair p)
{
    int i = w->heap_n++;
    while (i > 0) {
        int q = (i - 1) / 2;
        if (!pair_before(&p, &w->heap[q]))
            break;
        w->heap[i] = w->heap[q];
        i = q;
    }
    w->heap[i] = p;
}

static pair heap_pop(work *w)
{
    pair top = w->heap[0];
    pair last = w->heap[--w->heap_n];
    int i = 0, n = w->heap_n;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && pair_before(&w->heap[c + 1], &w->heap[c]))
            c++;
        if (!pair_before(&w->heap[c], &last))
            break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n > 0)
        w->heap[i] = last;
    return top;
}

static void try_pair(const hp_vocab *v, work *w, int l, int r)
{
    if (l < 0 || r < 0)
        return;
    int32_t res;
    int32_t rank = merge_rank(v, w->sym[l].id, w->sym[r].id, &res);
    if (rank < 0)
        return;
    pair p = {rank, l, r, w->sym[l].id, w->sym[r].id, res};
    heap_push(w, p);
}

/* Bytes of a symbol with no token: <0xNN> tokens, else UNK once. */
static void fallback(const hp_vocab *v, const char *s, uint32_t n,
                     hp_tok__out *e)
{
    if (v->byte_fallback && v->has_byte_tokens) {
        for (uint32_t i = 0; i < n; i++) {
            int32_t id = v->byte_tok[(unsigned char)s[i]];
            if (id >= 0)
                hp_tok__emit(e, id);
            else if (v->unk >= 0)
                hp_tok__emit(e, v->unk);
        }
    } else if (v->unk >= 0) {
        hp_tok__emit(e, v->unk);
    }
}

/* Steps 3-4 for one piece p[0..n). */
static void encode_piece(const hp_vocab *v, work *w, const char *p,
                         uint32_t n, hp_tok__out *e)
{
    int ns = 0;
    if (v->byte_level) {
        uint32_t ml = 0;
        for (uint32_t i = 0; i < n; i++) {
            unsigned char b = (unsigned char)p[i];
            memcpy(w->mapped + ml, w->map[b], w->mlen[b]);
            ml += w->mlen[b];
            w->sym[ns] = (sym){v->byte_id[b], ns - 1, ns + 1, i, 1};
            ns++;
        }
        if (v->ignore_merges) {
            int32_t id = hp_tok__lookup(v, w->mapped, ml);
            if (id >= 0) {
                hp_tok__emit(e, id);
                return;
            }
        }
    } else {
        if (v->ignore_merges) {
            int32_t id = hp_tok__lookup(v, p, n);
            if (id >= 0) {
                hp_tok__emit(e, id);
                return;
            }
        }
        for (uint32_t i = 0; i < n;) {
            uint32_t cl = hp_tok__char_len((const unsigned char *)p + i,
                                           n - i);
            int32_t id = hp_tok__lookup(v, p + i, cl);
            w->sym[ns] = (sym){id, ns - 1, ns + 1, i, cl};
            ns++;
            i += cl;
        }
    }
    if (ns == 0)
        return;
    w->sym[ns - 1].next = -1;

    w->heap_n = 0;
    for (int i = 1; i < ns; i++)
        try_pair(v, w, i - 1, i);
    while (w->heap_n > 0) {
        pair g = heap_pop(w);
        sym *l = &w->sym[g.left], *r = &w->sym[g.right];
        /* Stale: a side was merged away or changed since it was queued. */
        if (l->len == 0 || r->len == 0 || l->next != g.right ||
            l->id != g.lid || r->id != g.rid)
            continue;
        l->id = g.res;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            w->sym[r->next].prev = g.left;
        try_pair(v, w, l->prev, g.left);
        try_pair(v, w, g.left, l->next);
    }
    for (int i = 0; i != -1; i = w->sym[i].next) {
        if (w->sym[i].id >= 0)
            hp_tok__emit(e, w->sym[i].id);
        else
            fallback(v, p + w->sym[i].start, w->sym[i].len, e);
    }
}

bool hp_tok__bpe_encode(const hp_vocab *v, const char *text, size_t len,
                        hp_tok__out *e)
{
    char *norm = NULL;  /* owns: normalized text when it differs */
    hp_tok__span *spans = NULL;
    size_t scap = 0;
    work w = {0};
    bool ok = false;

    if (v->nfc && len > 0) {
        utf8proc_uint8_t *d = NULL;
        utf8proc_ssize_t dl = utf8proc_map((const utf8proc_uint8_t *)text,
                                           (utf8proc_ssize_t)len, &d,
                                           UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        /* Ill-formed UTF-8 is left as it is (bytes are still encoded). */
        if (dl >= 0) {
            norm = (char *)d;
            text = norm;
            len = (size_t)dl;
        } else {
            free(d);
        }
    }
    if (v->metaspace) {
        size_t k = 0;
        char *m = malloc(3 * len + 4);
        if (!m)
            goto done;
        if (v->add_space_prefix && len > 0) {
            memcpy(m, HP_TOK__WS, 3);
            k = 3;
        }
        for (size_t i = 0; i < len; i++) {
            if (text[i] == ' ') {
                memcpy(m + k, HP_TOK__WS, 3);
                k += 3;
            } else {
                m[k++] = text[i];
            }
        }
        free(norm);
        norm = m;
        text = m;
        len = k;
    }

    long np = hp_tok__pretok_split(v->pre, text, len, &spans, &scap);
    if (np < 0)
        goto done;
    size_t maxp = 0;
    for (long i = 0; i < np; i++)
        if (spans[i].len > maxp)
            maxp = spans[i].len;
    w.sym = malloc(sizeof *w.sym * (maxp + 1));
    w.heap = malloc(sizeof *w.heap * (3 * maxp + 1));
    w.mapped = malloc(2 * maxp + 1);
    if (!w.sym || !w.heap || !w.mapped)
        goto done;
    byte_table(w.map, w.mlen);
    for (long i = 0; i < np; i++)
        encode_piece(v, &w, text + spans[i].start, (uint32_t)spans[i].len,
                     e);
    ok = true;
done:
    free(w.sym);
    free(w.heap);
    free(w.mapped);
    free(spans);
    free(norm);
    return ok;
}

/* ---- decoding ----------------------------------------------------------- */

size_t hp_tok__bpe_piece(const hp_vocab *v, int32_t id, char *buf,
                         size_t cap)
{
    const unsigned char *t = (const unsigned char *)v->text + v->off[id];
    uint32_t n = v->len[id];
    size_t w = 0;
    for (uint32_t i = 0; i < n;) {
        uint32_t cl = hp_tok__char_len(t + i, n - i);
        char tmp[4];
        const char *src = (const char *)t + i;
        size_t sl = cl;
        if (v->byte_level) {
            int b = cp_byte(hp_tok__decode_cp(t + i, cl));
            if (b >= 0) {
                tmp[0] = (char)b;
                src = tmp;
                sl = 1;
            }
        } else if (v->metaspace && cl == 3 &&
                   memcmp(t + i, HP_TOK__WS, 3) == 0) {
            src = " ";
            sl = 1;
        }
        if (w < cap)
            memcpy(buf + w, src, cap - w < sl ? cap - w : sl);
        w += sl;
        i += cl;
    }
    return w;
}
