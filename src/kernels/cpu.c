/* cpu.c: picks the kernel implementation (scalar or AVX2) for this CPU and
 * keeps the choice. The one piece of process-wide kernel state: an atomic
 * pointer to a constant table, set by hp_kernels_init/hp_kernels_force and
 * read by hp_matmul. HOTPATH_KERNELS=scalar forces the reference path
 * (useful to bisect a numeric difference to the SIMD code). */
#if defined(HP_HAVE_AVX2)
#include <cpuid.h>
#endif
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kern_impl.h"
#include "kernels/kernels.h"

static _Atomic(const hp_kern__impl *) active;

/* AVX2 + FMA + F16C, and the OS saves YMM state. Read from CPUID directly:
 * clang's __builtin_cpu_supports does not know "f16c". */
static bool cpu_has_avx2(void)
{
#if defined(HP_HAVE_AVX2)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return false;
    bool fma = c & (1u << 12), osxsave = c & (1u << 27), f16c = c & (1u << 29);
    if (!fma || !osxsave || !f16c)
        return false;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6) /* XMM and YMM state enabled by the OS */
        return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return false;
    return (b & (1u << 5)) != 0;
#else
    return false;
#endif
}

bool hp_kernels_force(const char *name)
{
    if (name == NULL)
        return false;
    if (strcmp(name, "scalar") == 0) {
        atomic_store(&active, &hp_kern__scalar);
        return true;
    }
#if defined(HP_HAVE_AVX2)
    if (strcmp(name, "avx2") == 0 && cpu_has_avx2()) {
        atomic_store(&active, &hp_kern__avx2);
        return true;
    }
#endif
    return false;
}

void hp_kernels_init(void)
{
    const char *env = getenv("HOTPATH_KERNELS");
    if (env != NULL && hp_kernels_force(env))
        return;
    if (!hp_kernels_force("avx2"))
        hp_kernels_force("scalar");
}

void hp_kern__set(const hp_kern__impl *im)
{
    if (im != NULL)
        atomic_store(&active, im);
}

const hp_kern__impl *hp_kern__active(void)
{
    const hp_kern__impl *im = atomic_load(&active);
    if (im == NULL) {
        hp_kernels_init();
        im = atomic_load(&active);
    }
    return im;
}

const char *hp_kernels_impl(void)
{
    return hp_kern__active()->name;
}
