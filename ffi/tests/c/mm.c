/* mm.h: two independent NuttX heaps over static arrays, mm_addregion, every function, the
 * mallinfo invariants, NuttX's "n + 16 <= mxordblk" rule, memalign rules, bad input. */
#include "mm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);              \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static _Alignas(16) unsigned char region_a[64 * 1024];
static _Alignas(16) unsigned char region_a2[32 * 1024];
static _Alignas(16) unsigned char region_b[16 * 1024];

static void invariants(struct mm_heap_s *h)
{
    struct mm_mallinfo_s mi = mm_mallinfo(h);
    CHECK(mi.uordblks + mi.fordblks == mi.arena);
    CHECK(mi.usmblks >= mi.uordblks);
    CHECK(mi.mxordblk <= mi.fordblks);
    CHECK(mi.ordblks >= (mi.fordblks > 0));
}

static int inside(const void *p, const unsigned char *r, size_t n)
{
    return (const unsigned char *)p >= r && (const unsigned char *)p < r + n;
}

int main(void)
{
    struct mm_heap_s *a = mm_initialize("heap.a", region_a, sizeof region_a);
    struct mm_heap_s *b = mm_initialize("heap.b", region_b, sizeof region_b);
    CHECK(a != NULL && b != NULL && a != b);
    struct mm_mallinfo_s mi = mm_mallinfo(a);
    CHECK(mi.arena == (int)sizeof region_a && mi.aordblks == 0 && mi.ordblks == 1);
    invariants(a);
    invariants(b);

    /* mm_addregion: the heap grows by the second region. */
    mm_addregion(a, region_a2, sizeof region_a2);
    mi = mm_mallinfo(a);
    CHECK(mi.arena == (int)(sizeof region_a + sizeof region_a2) && mi.ordblks == 2);
    mm_addregion(a, region_a2, 8); /* too small: logged, ignored */
    CHECK(mm_mallinfo(a).arena == mi.arena);

    /* malloc, zalloc, calloc, malloc_size; the heaps are independent. */
    char *p = mm_malloc(a, 100);
    char *q = mm_malloc(b, 100);
    CHECK(p != NULL && q != NULL && (uintptr_t)p % (2 * sizeof(void *)) == 0);
    CHECK((inside(p, region_a, sizeof region_a) || inside(p, region_a2, sizeof region_a2)) &&
          inside(q, region_b, sizeof region_b));
    CHECK(mm_malloc_size(a, p) >= 100 && mm_malloc_size(a, p) <= 100 + 16);
    memset(p, 'a', 100);
    memset(q, 'b', 100);
    unsigned char *z = mm_zalloc(a, 300);
    unsigned char *c = mm_calloc(a, 30, 10);
    CHECK(z != NULL && c != NULL);
    for (int i = 0; i < 300; i++) {
        if (z[i] != 0 || c[i] != 0) {
            CHECK(!"zeroed");
            break;
        }
    }
    CHECK(mm_calloc(a, SIZE_MAX / 4, 8) == NULL); /* overflow */
    CHECK(mm_malloc(a, SIZE_MAX) == NULL);
    CHECK(mm_mallinfo(a).aordblks == 3);
    invariants(a);

    /* n + 16 <= mxordblk always succeeds (NuttX's tests rely on it). */
    mi = mm_mallinfo(b);
    void *edge = mm_malloc(b, (size_t)mi.mxordblk - 16);
    CHECK(edge != NULL);
    invariants(b);
    mm_free(b, edge);
    mi = mm_mallinfo(b);
    void *aligned_edge = mm_memalign(b, 64, (size_t)mi.mxordblk - 16 - 2 * 64);
    CHECK(aligned_edge != NULL && (uintptr_t)aligned_edge % 64 == 0);
    mm_free(b, aligned_edge);

    /* memalign: 0, 1, 2 are malloc; powers of two honoured; anything else NULL. */
    for (size_t al = 0; al <= 2; al++) {
        void *m = mm_memalign(a, al, 24);
        CHECK(m != NULL);
        mm_free(a, m);
    }
    for (size_t al = 4; al <= 4096; al *= 2) {
        void *m = mm_memalign(a, al, 40);
        CHECK(m != NULL && (uintptr_t)m % al == 0);
        mm_free(a, m);
    }
    CHECK(mm_memalign(a, 3, 10) == NULL);
    CHECK(mm_memalign(a, 48, 10) == NULL);
    CHECK(mm_memalign(a, (SIZE_MAX >> 1) + 1, 10) == NULL);

    /* realloc: NULL allocates; grow keeps contents; 0 returns p shrunk (NuttX). */
    char *r = mm_realloc(a, NULL, 10);
    CHECK(r != NULL);
    memcpy(r, "nuttx rtos", 10);
    r = mm_realloc(a, r, 5000);
    CHECK(r != NULL && memcmp(r, "nuttx rtos", 10) == 0);
    char *shrunk = mm_realloc(a, r, 0);
    CHECK(shrunk == r && mm_malloc_size(a, shrunk) < 64);
    char *keep = shrunk;
    memcpy(keep, "nut", 3);
    CHECK(mm_realloc(a, keep, 1 << 30) == NULL); /* failure: NULL, block intact */
    CHECK(memcmp(keep, "nut", 3) == 0);
    mm_free(a, keep);

    /* Bad input: a pointer of the other heap, a double free, interior pointers, NULL. */
    int before = mm_mallinfo(a).aordblks;
    mm_free(a, q);     /* heap b's block: logged, ignored */
    mm_free(a, p + 8); /* interior: logged, ignored */
    CHECK(mm_mallinfo(a).aordblks == before);
    CHECK(memcmp(q, "bbbb", 4) == 0);
    CHECK(mm_malloc_size(a, q) == 0);
    mm_free(a, NULL);
    mm_free(a, p);
    mm_free(a, p); /* double free: logged, ignored */
    CHECK(mm_mallinfo(a).aordblks == before - 1);
    mm_free(a, z);
    mm_free(a, c);
    mm_free(b, q);
    CHECK(mm_mallinfo(a).aordblks == 0 && mm_mallinfo(b).aordblks == 0);
    CHECK(mm_mallinfo(a).usmblks > mm_mallinfo(a).uordblks); /* the peak stays */
    invariants(a);
    invariants(b);

    /* NULL heaps and regions. */
    CHECK(mm_malloc(NULL, 10) == NULL);
    CHECK(mm_mallinfo(NULL).arena == 0);
    CHECK(mm_initialize("bad", NULL, 4096) == NULL);
    CHECK(mm_initialize("tiny", region_a2, 8) == NULL);
    mm_free(NULL, NULL);

    mm_uninitialize(a);
    mm_uninitialize(b);
    mm_uninitialize(NULL);
    if (failures != 0) {
        fprintf(stderr, "mm.c: %d failures\n", failures);
        return 1;
    }
    return 0;
}
