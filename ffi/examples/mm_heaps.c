/* Two NuttX heaps (mm.h): a general heap over internal RAM and a DMA heap over a separate
 * region, each with its own figures. Build:
 *   cc -std=c11 -I ffi/include mm_heaps.c libmempools.a -lpthread -ldl -lm -lrt */
#include "mm.h"

#include <stdio.h>
#include <string.h>

static _Alignas(16) unsigned char sram[48 * 1024];
static _Alignas(16) unsigned char sram2[16 * 1024];
static _Alignas(64) unsigned char dma_ram[8 * 1024];

static void show(const char *what, struct mm_heap_s *h)
{
    struct mm_mallinfo_s mi = mm_mallinfo(h);
    printf("%-5s arena %6d used %6d free %6d largest %6d chunks %d/%d\n", what, mi.arena, mi.uordblks,
           mi.fordblks, mi.mxordblk, mi.aordblks, mi.ordblks);
}

int main(void)
{
    struct mm_heap_s *heap = mm_initialize("kmm", sram, sizeof sram);
    struct mm_heap_s *dma = mm_initialize("dma", dma_ram, sizeof dma_ram);
    if (heap == NULL || dma == NULL) {
        return 1;
    }
    mm_addregion(heap, sram2, sizeof sram2);

    char *name = mm_zalloc(heap, 32);
    strcpy(name, "sensor0");
    void *desc = mm_memalign(dma, 64, 512); /* DMA descriptors want 64-byte alignment */
    void *buf = mm_malloc(dma, 2048);
    show("kmm", heap);
    show("dma", dma);

    int ok = desc != NULL && ((unsigned long)desc % 64) == 0 && buf != NULL;
    name = mm_realloc(heap, name, 64);
    ok = ok && name != NULL && strcmp(name, "sensor0") == 0;
    mm_free(dma, buf);
    mm_free(dma, desc);
    mm_free(heap, name);
    struct mm_mallinfo_s mi = mm_mallinfo(heap);
    ok = ok && mi.aordblks == 0 && mi.uordblks + mi.fordblks == mi.arena;
    mm_uninitialize(dma);
    mm_uninitialize(heap);
    return ok ? 0 : 1;
}
