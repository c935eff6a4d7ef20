/* gran_dma: carve DMA buffers out of a region with the granule allocator, as NuttX drivers
 * do with memory the CPU must not cache-share with other data. The allocator keeps its
 * bitmap outside the region: the region itself is never read or written by the library.
 *
 * Build: cc -std=c11 -I ffi/include ffi/examples/gran_dma.c target/release/libmempools.a \
 *           -lpthread -ldl -lm -lrt */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gran.h"

#define DMA_SIZE (256 * 1024)
#define CACHE_LINE 64

/* Stands in for a DMA-capable memory bank. */
static uint8_t dma_bank[DMA_SIZE] __attribute__((aligned(4096)));

struct descriptor {
    uint32_t addr;
    uint32_t len;
    uint32_t flags;
    uint32_t next;
};

static void show(const char *when, GRAN_HANDLE dma) {
    struct graninfo_s info;
    gran_info(dma, &info);
    printf("%-22s granule %4u B  total %5zu  free %5zu  largest free run %5zu\n", when,
           1u << info.log2gran, info.ngranules, info.nfree, info.mxfree);
}

int main(void) {
    /* Cache-line granules, cache-line alignment: no two buffers share a line. */
    GRAN_HANDLE dma = gran_initialize(dma_bank, sizeof dma_bank, 6, 6);
    if (dma == NULL) {
        fprintf(stderr, "gran_initialize failed\n");
        return EXIT_FAILURE;
    }
    show("start", dma);

    /* The first 4 KiB belong to the boot loader's mailbox: never hand them out. */
    if (gran_reserve(dma, (uintptr_t)dma_bank, 4096) != 0) {
        fprintf(stderr, "gran_reserve failed\n");
        return EXIT_FAILURE;
    }
    /* Reserving it twice says it is taken. */
    if (gran_reserve(dma, (uintptr_t)dma_bank + 1024, 64) != -EEXIST) {
        fprintf(stderr, "a second reservation should fail with -EEXIST\n");
        return EXIT_FAILURE;
    }
    show("mailbox reserved", dma);

    /* A descriptor ring the engine wants aligned to 1 KiB. */
    enum { NDESC = 32, FRAME = 1536 };
    struct descriptor *ring = gran_alloc_align(dma, 1024, NDESC * sizeof(struct descriptor));
    uint8_t *frames[NDESC];
    if (ring == NULL || (uintptr_t)ring % 1024 != 0) {
        fprintf(stderr, "ring allocation failed\n");
        return EXIT_FAILURE;
    }
    for (int i = 0; i < NDESC; i++) {
        frames[i] = gran_alloc(dma, FRAME);
        if (frames[i] == NULL) {
            fprintf(stderr, "frame %d: out of DMA memory\n", i);
            return EXIT_FAILURE;
        }
        memset(frames[i], 0, FRAME);
        ring[i] = (struct descriptor){(uint32_t)(frames[i] - dma_bank), FRAME, 1, (uint32_t)((i + 1) % NDESC)};
    }
    show("ring and frames", dma);

    /* Tear down in any order; a repeated free is reported and ignored. */
    for (int i = NDESC - 1; i >= 0; i -= 2) {
        gran_free(dma, frames[i], FRAME);
    }
    show("odd frames freed", dma);
    for (int i = NDESC - 2; i >= 0; i -= 2) {
        gran_free(dma, frames[i], FRAME);
    }
    gran_free(dma, ring, NDESC * sizeof(struct descriptor));
    show("all freed", dma);

    /* The page allocator: one process-wide pool of 4096-byte pages. */
    mm_pginitialize(dma_bank + 128 * 1024, 128 * 1024);
    uintptr_t pages = mm_pgalloc(4);
    struct pginfo_s pg;
    mm_pginfo(&pg);
    printf("pages: %zu total, %zu free, largest run %zu (4 at %#lx)\n", pg.ntotal, pg.nfree, pg.mxfree,
           (unsigned long)(pages - (uintptr_t)dma_bank));
    mm_pgfree(pages, 4);

    gran_release(dma);
    return 0;
}
