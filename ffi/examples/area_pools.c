/* A BeOS style driver keeping its buffers in an area pool (area_malloc.h). Build:
 *   cc -std=c11 -I ffi/include area_pools.c libmempools.a -lpthread -ldl -lm -lrt */
#include "area_malloc.h"

#include <stdio.h>
#include <string.h>

static area_malloc_module_info *area_malloc;
static const void *rx_pool;

static status_t init_driver(void)
{
    status_t err = get_module(B_AREA_MALLOC_MODULE_NAME, (module_info **)&area_malloc);
    if (err != B_OK) {
        return err;
    }
    /* Locked buffers if the system allows it, plain ones otherwise. */
    rx_pool = area_malloc->create_pool(B_ANY_KERNEL_ADDRESS, 256 * 1024, B_FULL_LOCK, B_READ_AREA | B_WRITE_AREA);
    if (rx_pool == NULL) {
        rx_pool = area_malloc->create_pool(B_ANY_KERNEL_ADDRESS, 256 * 1024, B_NO_LOCK, B_READ_AREA | B_WRITE_AREA);
    }
    return rx_pool != NULL ? B_OK : B_NO_MEMORY;
}

static void uninit_driver(void)
{
    area_malloc->delete_pool(rx_pool);
    put_module(B_AREA_MALLOC_MODULE_NAME);
}

int main(void)
{
    if (init_driver() != B_OK) {
        fprintf(stderr, "init_driver failed\n");
        return 1;
    }
    char *frames[16];
    for (int i = 0; i < 16; i++) {
        frames[i] = area_malloc->malloc(rx_pool, 1514);
        if (frames[i] == NULL) {
            return 1;
        }
        snprintf(frames[i], 1514, "frame %d", i);
    }
    int *table = area_malloc->calloc(rx_pool, 64, sizeof(int));
    table = area_malloc->realloc(rx_pool, table, 128 * sizeof(int));
    int ok = table != NULL && table[63] == 0 && strcmp(frames[15], "frame 15") == 0;
    for (int i = 0; i < 16; i++) {
        area_malloc->free(rx_pool, frames[i]);
    }
    area_malloc->free(rx_pool, table);
    printf("area pool served 16 frames and a table: %s\n", ok ? "ok" : "FAILED");
    uninit_driver();
    return ok ? 0 : 1;
}
