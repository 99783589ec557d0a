/* kern_k.h: internal interface of the "more formats" kernels: the block
 * layouts of Q4_1, Q5_0, Q5_1 (32 elements) and the K-quants Q4_K, Q5_K,
 * Q6_K (256-element super-blocks), their reference (de)quantizers
 * (quant_k.c), and their scalar (matmul_k.c) and AVX2 (matmul_k_avx2.c) row
 * kernels, which matmul.c / matmul_avx2.c / quant_ref.c register in their
 * tables.
 *
 * Internal tier (hp_kern__*): included only by src/kernels/ and the kernel
 * tests, never by model/ or engine/. Layouts are GGUF's, byte for byte. */
#ifndef HP_KERN_K_H
#define HP_KERN_K_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kern_impl.h"

#define HP_QK_K 256 /* elements per K-quant super-block */

/* Q4_1: 32 weights = d * q + m, q in 0..15; nibbles as Q4_0 (low nibble of
 * qs[j] is element j, high nibble element j+16). 20 bytes. */
typedef struct hp_block_q4_1 {
    uint16_t d, m; /* f16 scale and offset */
    uint8_t qs[16];
} hp_block_q4_1;

/* Q5_0: 32 weights = d * (q - 16), q in 0..31. Low 4 bits as Q4_0; bit 4 of
 * element j is bit j of the little-endian 32-bit qh. 22 bytes. */
typedef struct hp_block_q5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[16];
} hp_block_q5_0;

/* Q5_1: 32 weights = d * q + m, q in 0..31, bits as Q5_0. 24 bytes. */
typedef struct hp_block_q5_1 {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[16];
} hp_block_q5_1;

/* Q4_K: 256 weights in 8 sub-blocks of 32; weight = d * sc[k] * q -
 * dmin * mn[k], q in 0..15, sc and mn 6-bit (see hp_kern__k4_scales).
 * Sub-blocks 2c and 2c+1 are the low and high nibbles of qs[32c..32c+31].
 * 144 bytes. */
typedef struct hp_block_q4_k {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qs[128];
} hp_block_q4_k;

/* Q5_K: Q4_K plus a fifth bit: bit k of qh[l] is bit 4 of element l of
 * sub-block k. q in 0..31. 176 bytes. */
typedef struct hp_block_q5_k {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[32];
    uint8_t qs[128];
} hp_block_q5_k;

/* Q6_K: 256 weights in 16 groups of 16; weight = d * sc[g] * (q - 32), q in
 * 0..63, sc int8. In half h (128 elements), element 32t + l (t < 4, l < 32)
 * has low bits from ql[64h + 32(t&1) + l] (low nibble for t < 2, high
 * otherwise), high bits (qh[32h + l] >> 2t) & 3, and scale sc[8h + 2t +
 * l/16]. 210 bytes, d last. */
typedef struct hp_block_q6_k {
    uint8_t ql[128];
    uint8_t qh[64];
    int8_t scales[16];
    uint16_t d;
} hp_block_q6_k;

/* Unpack Q4_K/Q5_K's 12 scale bytes to sc[8] and mn[8] (each 0..63):
 * bytes 0-3 hold sc 0-3 in their low 6 bits, bytes 4-7 mn 0-3; sub-blocks
 * 4-7 keep their low 4 bits in bytes 8-11 (sc low nibble, mn high nibble)
 * and their top 2 bits in the top 2 bits of bytes 0-3 (sc) and 4-7 (mn). */
void hp_kern__k4_scales(const uint8_t s[12], uint8_t sc[8], uint8_t mn[8]);
/* The inverse: pack sc[8], mn[8] (each 0..63) into 12 bytes. */
void hp_kern__k4_pack(const uint8_t sc[8], const uint8_t mn[8],
                      uint8_t s[12]);

/* Reference (de)quantizers, n a multiple of the block (quant_ref.c's table
 * points at these). */
void hp_kern__deq_q4_1(const void *src, float *dst, int64_t n);
void hp_kern__q_q4_1(const float *src, void *dst, int64_t n);
void hp_kern__deq_q5_0(const void *src, float *dst, int64_t n);
void hp_kern__q_q5_0(const float *src, void *dst, int64_t n);
void hp_kern__deq_q5_1(const void *src, float *dst, int64_t n);
void hp_kern__q_q5_1(const float *src, void *dst, int64_t n);
void hp_kern__deq_q4_k(const void *src, float *dst, int64_t n);
void hp_kern__q_q4_k(const float *src, void *dst, int64_t n);
void hp_kern__deq_q5_k(const void *src, float *dst, int64_t n);
void hp_kern__q_q5_k(const float *src, void *dst, int64_t n);
void hp_kern__deq_q6_k(const void *src, float *dst, int64_t n);
void hp_kern__q_q6_k(const float *src, void *dst, int64_t n);

/* Scalar row kernels (matmul_k.c): dequantize a block, dot it with the f32
 * activations; xq unused (may be NULL), so hp_matmul's scalar fallback can
 * call them for any implementation. */
void hp_kern__rows_q4_1_scalar(const void *W, size_t rb, const float *x,
                               const hp_kern__q8x *xq, float *out, int r0,
                               int r1, int rows, int cols, int nb);
void hp_kern__rows_q5_0_scalar(const void *W, size_t rb, const float *x,
                               const hp_kern__q8x *xq, float *out, int r0,
                               int r1, int rows, int cols, int nb);
void hp_kern__rows_q5_1_scalar(const void *W, size_t rb, const float *x,
                               const hp_kern__q8x *xq, float *out, int r0,
                               int r1, int rows, int cols, int nb);
void hp_kern__rows_q4_k_scalar(const void *W, size_t rb, const float *x,
                               const hp_kern__q8x *xq, float *out, int r0,
                               int r1, int rows, int cols, int nb);
void hp_kern__rows_q5_k_scalar(const void *W, size_t rb, const float *x,
                               const hp_kern__q8x *xq, float *out, int r0,
                               int r1, int rows, int cols, int nb);
void hp_kern__rows_q6_k_scalar(const void *W, size_t rb, const float *x,
                               const hp_kern__q8x *xq, float *out, int r0,
                               int r1, int rows, int cols, int nb);

#if defined(HP_HAVE_AVX2)
/* AVX2 row kernels (matmul_k_avx2.c): exact int8 dot products against the
 * Q8 activation blocks xq (required: register with wants_q8x). Only the
 * d/qs fields of xq are read. */
void hp_kern__rows_q4_1_avx2(const void *W, size_t rb, const float *x,
                             const hp_kern__q8x *xq, float *out, int r0,
                             int r1, int rows, int cols, int nb);
void hp_kern__rows_q5_0_avx2(const void *W, size_t rb, const float *x,
                             const hp_kern__q8x *xq, float *out, int r0,
                             int r1, int rows, int cols, int nb);
void hp_kern__rows_q5_1_avx2(const void *W, size_t rb, const float *x,
                             const hp_kern__q8x *xq, float *out, int r0,
                             int r1, int rows, int cols, int nb);
void hp_kern__rows_q4_k_avx2(const void *W, size_t rb, const float *x,
                             const hp_kern__q8x *xq, float *out, int r0,
                             int r1, int rows, int cols, int nb);
void hp_kern__rows_q5_k_avx2(const void *W, size_t rb, const float *x,
                             const hp_kern__q8x *xq, float *out, int r0,
                             int r1, int rows, int cols, int nb);
void hp_kern__rows_q6_k_avx2(const void *W, size_t rb, const float *x,
                             const hp_kern__q8x *xq, float *out, int r0,
                             int r1, int rows, int cols, int nb);
#endif

#endif
