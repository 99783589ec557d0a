/* matmul_avx2.c: AVX2/FMA/F16C row kernels for hp_matmul. Compiled with
 * -mavx2 -mfma -mf16c (CMake, by the _avx2.c suffix) and only called after
 * cpu.c checked the CPU. Placeholder table until the kernels land: every
 * entry NULL falls back to the scalar kernels. */
#include "kernels/kern_impl.h"

const hp_kern__impl hp_kern__avx2 = {
    .name = "avx2",
};
