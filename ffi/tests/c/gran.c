/* gran.h: the granule allocator and the page allocator, used the way NuttX code uses them,
 * and the bad input with its documented outcome (logged, nothing changed). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gran.h"

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);    \
            exit(2);                                                                    \
        }                                                                               \
    } while (0)

#define GRAN_LOG2 6 /* 64-byte granules */
#define NGRAN 1024

static uint8_t region[NGRAN << GRAN_LOG2] __attribute__((aligned(4096)));
static uint8_t elsewhere[256] __attribute__((aligned(64)));
static uint8_t pages[16 * 4096] __attribute__((aligned(4096)));

static struct graninfo_s info_of(GRAN_HANDLE h) {
    struct graninfo_s info;
    memset(&info, 0xff, sizeof info);
    gran_info(h, &info);
    return info;
}

static int same_info(struct graninfo_s a, struct graninfo_s b) {
    return a.log2gran == b.log2gran && a.ngranules == b.ngranules && a.nfree == b.nfree &&
           a.mxfree == b.mxfree;
}

static void granules(void) {
    GRAN_HANDLE h = gran_initialize(region, sizeof region, GRAN_LOG2, 4);
    CHECK(h != NULL);
    struct graninfo_s info = info_of(h);
    CHECK(info.log2gran == GRAN_LOG2);
    CHECK(info.ngranules == NGRAN && info.nfree == NGRAN && info.mxfree == NGRAN);

    /* Sizes round up to whole granules; first fit from the start. */
    uint8_t *a = gran_alloc(h, 47);
    CHECK(a == region);
    memset(a, 0xab, 64);
    uint8_t *b = gran_alloc(h, 1000); /* 16 granules */
    CHECK(b == region + 64);
    memset(b, 0xcd, 1024);
    CHECK(info_of(h).nfree == NGRAN - 17);

    uint8_t *c = gran_alloc_align(h, 4096, 100);
    CHECK(c != NULL && (uintptr_t)c % 4096 == 0);
    CHECK(info_of(h).nfree == NGRAN - 19);

    /* Refused requests: NULL, nothing taken. */
    info = info_of(h);
    CHECK(gran_alloc(h, 0) == NULL);
    CHECK(gran_alloc(h, SIZE_MAX) == NULL);
    CHECK(gran_alloc(h, sizeof region) == NULL);
    CHECK(gran_alloc_align(h, 3, 10) == NULL);
    CHECK(gran_alloc_align(h, 0, 10) == NULL);
    CHECK(gran_alloc(NULL, 10) == NULL);
    CHECK(same_info(info, info_of(h)));

    /* gran_free of unallocated granules: reported, nothing freed. */
    gran_free(h, a, 47);
    info = info_of(h);
    CHECK(info.nfree == NGRAN - 18);
    gran_free(h, a, 47); /* double free */
    CHECK(same_info(info, info_of(h)));
    gran_free(h, b, 17 * 64); /* 16 allocated granules and one free one after them */
    CHECK(same_info(info, info_of(h)));
    gran_free(h, b - 64, 2 * 64); /* a free granule then an allocated one */
    CHECK(same_info(info, info_of(h)));
    /* Foreign, misaligned, NULL, zero-sized, NULL handle: reported, nothing freed. */
    gran_free(h, elsewhere, 64);
    gran_free(h, region + sizeof region, 64);
    gran_free(h, b + 1, 64);
    gran_free(h, NULL, 64);
    gran_free(h, b, 0);
    gran_free(NULL, b, 1000);
    CHECK(same_info(info, info_of(h)));
    CHECK(b[0] == 0xcd && b[1023] == 0xcd);

    /* gran_reserve: all or nothing. */
    uintptr_t base = (uintptr_t)region;
    CHECK(gran_reserve(h, (uintptr_t)b + 10 * 64, 20 * 64) == -EEXIST); /* partly taken */
    CHECK(same_info(info, info_of(h)));
    CHECK(gran_reserve(h, base + 512 * 64 + 10, 1000) == 0); /* granules 512..527 */
    CHECK(info_of(h).nfree == info.nfree - 16);
    CHECK(gran_reserve(h, base + 520 * 64, 64) == -EEXIST);
    CHECK(gran_reserve(h, base + sizeof region, 64) == -EINVAL);
    CHECK(gran_reserve(h, base + sizeof region - 64, 128) == -EINVAL);
    CHECK(gran_reserve(h, base - 64, 64) == -EINVAL);
    CHECK(gran_reserve(h, base + 600 * 64, 0) == -EINVAL);
    CHECK(gran_reserve(NULL, base, 64) == -EINVAL);
    CHECK(info_of(h).nfree == info.nfree - 16);

    /* The longest free run ends at the reservation. */
    info = info_of(h);
    CHECK(info.mxfree == NGRAN - 528);

    /* Fill the pool granule by granule: exactly nfree allocations succeed. */
    size_t n = 0;
    while (gran_alloc(h, 64) != NULL) {
        n++;
    }
    CHECK(n == info.nfree);
    CHECK(info_of(h).nfree == 0 && info_of(h).mxfree == 0);

    /* NULL handle and NULL info. */
    struct graninfo_s zero = info_of(NULL);
    CHECK(zero.ngranules == 0 && zero.nfree == 0 && zero.mxfree == 0 && zero.log2gran == 0);
    gran_info(h, NULL);

    gran_release(h);
    gran_release(NULL);

    /* Bad geometry: NULL. */
    CHECK(gran_initialize(NULL, 4096, 6, 4) == NULL);
    CHECK(gran_initialize(region, 32, 6, 4) == NULL);
    CHECK(gran_initialize(region, sizeof region, 64, 0) == NULL);

    /* More than 65535 granules: no NuttX limit here. */
    h = gran_initialize(region, sizeof region, 0, 0);
    CHECK(h != NULL && info_of(h).ngranules == sizeof region);
    void *big = gran_alloc(h, 65000);
    CHECK(big == region && info_of(h).nfree == sizeof region - 65000);
    gran_free(h, big, 65000);
    CHECK(info_of(h).mxfree == sizeof region);
    gran_release(h);
}

static struct pginfo_s pginfo(void) {
    struct pginfo_s info;
    memset(&info, 0xff, sizeof info);
    mm_pginfo(&info);
    return info;
}

static void page_allocator(void) {
    /* Before mm_pginitialize: failure values. */
    CHECK(mm_pgalloc(1) == 0);
    CHECK(mm_pgreserve((uintptr_t)pages, 4096) == -EINVAL);
    struct pginfo_s info = pginfo();
    CHECK(info.ntotal == 0 && info.nfree == 0 && info.mxfree == 0);

    mm_pginitialize(pages, sizeof pages);
    info = pginfo();
    CHECK(info.ntotal == 16 && info.nfree == 16 && info.mxfree == 16);
    mm_pginitialize(region, sizeof region); /* once per process: ignored */
    CHECK(pginfo().ntotal == 16);

    uintptr_t p = mm_pgalloc(3);
    CHECK(p == (uintptr_t)pages);
    memset((void *)p, 0x5a, 3 * 4096);
    CHECK(mm_pgreserve(p + 4096, 1) == -EEXIST);
    CHECK(mm_pgreserve((uintptr_t)pages + 8 * 4096, 4096) == 0);
    info = pginfo();
    CHECK(info.nfree == 12 && info.mxfree == 7);
    CHECK(mm_pgalloc(0) == 0);
    CHECK(mm_pgalloc(8) == 0);

    uintptr_t q = mm_pgalloc(7);
    CHECK(q == (uintptr_t)pages + 9 * 4096); /* first fit: 3..7 is too short */
    mm_pgfree(q, 7);
    mm_pgfree(p, 3);
    info = pginfo();
    CHECK(info.nfree == 15 && info.mxfree == 8);
    /* Pages that are not allocated, foreign and misaligned addresses: nothing freed. */
    mm_pgfree(p, 3);
    mm_pgfree(12345, 1);
    mm_pgfree(0, 1);
    mm_pgfree(p + 1, 1);
    mm_pgfree((uintptr_t)pages + 8 * 4096, 2); /* the reserved page and a free one */
    struct pginfo_s after = pginfo();
    CHECK(after.ntotal == 16 && after.nfree == 15 && after.mxfree == 8);
    mm_pginfo(NULL);
}

int main(void) {
    granules();
    page_allocator();
    return 0;
}
