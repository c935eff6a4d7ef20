/* le_mem_points: Legato's "Point" example on mempools' le_mem.h.
 *
 * Build (from the repository root, after `cargo build -p mempools-ffi --release`):
 *
 *     cc -std=c11 -I ffi/include ffi/examples/le_mem_points.c \
 *        target/release/libmempools.a -lpthread -ldl -lm -o le_mem_points
 *
 * A pool of points, expanded up front; points shared by reference count; a destructor; a
 * sub-pool for one client; a static pool that needs no heap; the statistics at the end. */
#include <stdio.h>
#include <stdlib.h>

#include "le_mem.h"

typedef struct {
    int x;
    int y;
} Point_t;

static le_mem_PoolRef_t PointPool;

LE_MEM_DEFINE_STATIC_POOL(OriginPool, 2, sizeof(Point_t));

static void PointDestructor(void *objPtr)
{
    Point_t *p = objPtr;
    printf("  destroying point (%d, %d)\n", p->x, p->y);
}

static Point_t *NewPoint(le_mem_PoolRef_t pool, int x, int y)
{
    Point_t *p = le_mem_ForceAlloc(pool);
    p->x = x;
    p->y = y;
    return p;
}

static void PrintStats(le_mem_PoolRef_t pool)
{
    char name[32];
    le_mem_PoolStats_t s;
    le_mem_GetName(pool, name, sizeof name);
    le_mem_GetStats(pool, &s);
    printf("%-16s total %3zu  in use %3zu  max %3zu  free %3zu  allocs %3llu  overflows %zu%s\n", name,
           le_mem_GetObjectCount(pool), s.numBlocksInUse, s.maxNumBlocksUsed, s.numFree,
           (unsigned long long)s.numAllocs, s.numOverflows, le_mem_IsSubPool(pool) ? "  (sub-pool)" : "");
}

int main(void)
{
    PointPool = le_mem_CreatePool("PointPool", sizeof(Point_t));
    le_mem_ExpandPool(PointPool, 12);
    le_mem_SetDestructor(PointPool, PointDestructor);
    le_mem_SetNumObjsToForce(PointPool, 4);

    printf("shared point:\n");
    Point_t *p = NewPoint(PointPool, 5, 10);
    le_mem_AddRef(p); /* a second holder */
    printf("  reference count %zu\n", le_mem_GetRefCount(p));
    le_mem_Release(p); /* the first holder is done */
    le_mem_Release(p); /* the second too: the destructor runs */

    printf("a client with its own share of the pool:\n");
    le_mem_PoolRef_t client = le_mem_CreateSubPool(PointPool, "PointPool.client", 4);
    Point_t *line[6];
    for (int i = 0; i < 6; i++) {
        line[i] = NewPoint(client, i, 2 * i); /* over its share of 4: the sub-pool warns */
    }
    PrintStats(PointPool);
    PrintStats(client);
    for (int i = 0; i < 6; i++) {
        le_mem_Release(line[i]);
    }
    le_mem_DeleteSubPool(client);

    printf("static pool (no heap):\n");
    le_mem_PoolRef_t origins = le_mem_InitStaticPool(OriginPool, 2, sizeof(Point_t));
    Point_t *o = NewPoint(origins, 0, 0);
    printf("  found by name: %s\n", le_mem_FindPool("OriginPool") == origins ? "yes" : "no");
    le_mem_Release(o);

    char *label = le_mem_StrDup(le_mem_CreatePool("Labels", 32), "a label");
    printf("label \"%s\" in a block of %zu bytes\n", label, le_mem_GetBlockSize(label));
    le_mem_Release(label);

    PrintStats(PointPool);
    PrintStats(origins);
    le_mem_PoolStats_t s;
    le_mem_GetStats(PointPool, &s);
    return s.numBlocksInUse == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
