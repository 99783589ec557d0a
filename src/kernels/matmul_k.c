/* matmul_k.c: portable scalar row kernels for Q4_1, Q5_0, Q5_1, Q4_K, Q5_K
 * and Q6_K weights (hp_kern__scalar's entries; also what hp_matmul falls
 * back to when an implementation has no kernel for these types).
 *
 * Dequantize one block of a weight row with the reference dequantizer
 * (quant_k.c), then dot it with up to 8 f32 activation rows. Per output
 * value: a float partial sum per block, added in block order to a float
 * accumulator, whatever nb or the row range: batch- and thread-invariant
 * as matmul.c requires. Plain on purpose: the fast path is
 * matmul_k_avx2.c; this one is the portable twin that needs no activation
 * quantization. */
#include "kernels/kern_k.h"
#include "kernels/kernels.h"

#define KNB 8 /* activation rows per pass over a weight row */

typedef void (*deq_fn)(const void *src, float *dst, int64_t n);

static void rows_deq(deq_fn deq, int be, size_t bb, const void *W,
                     size_t row_bytes, const float *x, float *out, int r0,
                     int r1, int rows, int cols, int nb)
{
    float buf[HP_QK_K];
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)W + (size_t)r * row_bytes;
        for (int b0 = 0; b0 < nb; b0 += KNB) {
            int nbb = nb - b0 < KNB ? nb - b0 : KNB;
            float acc[KNB] = {0};
            for (int c0 = 0; c0 < cols; c0 += be) {
                deq(row + (size_t)(c0 / be) * bb, buf, be);
                for (int j = 0; j < nbb; j++) {
                    const float *xv = x + (size_t)(b0 + j) * cols + c0;
                    float s = 0.0f;
                    for (int i = 0; i < be; i++)
                        s += buf[i] * xv[i];
                    acc[j] += s;
                }
            }
            for (int j = 0; j < nbb; j++)
                out[(size_t)(b0 + j) * rows + r] = acc[j];
        }
    }
}

#define ROWS_SCALAR(NAME, DEQ, BE, BLK)                                        \
    void NAME(const void *W, size_t rb, const float *x,                        \
              const hp_kern__q8x *xq, float *out, int r0, int r1, int rows,    \
              int cols, int nb)                                                \
    {                                                                          \
        (void)xq;                                                              \
        rows_deq(DEQ, BE, sizeof(BLK), W, rb, x, out, r0, r1, rows, cols,      \
                 nb);                                                          \
    }
ROWS_SCALAR(hp_kern__rows_q4_1_scalar, hp_kern__deq_q4_1, 32, hp_block_q4_1)
ROWS_SCALAR(hp_kern__rows_q5_0_scalar, hp_kern__deq_q5_0, 32, hp_block_q5_0)
ROWS_SCALAR(hp_kern__rows_q5_1_scalar, hp_kern__deq_q5_1, 32, hp_block_q5_1)
ROWS_SCALAR(hp_kern__rows_q4_k_scalar, hp_kern__deq_q4_k, HP_QK_K,
            hp_block_q4_k)
ROWS_SCALAR(hp_kern__rows_q5_k_scalar, hp_kern__deq_q5_k, HP_QK_K,
            hp_block_q5_k)
ROWS_SCALAR(hp_kern__rows_q6_k_scalar, hp_kern__deq_q6_k, HP_QK_K,
            hp_block_q6_k)
