/* le_mem.h: every function used the way Legato programs use it, the worked example of
 * spec/le_mem.md, reduced pools, variable-size allocation, static pools, names, destructors
 * that call le_mem_*, and two threads hammering one pool. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "le_mem.h"

static int failures;
static int checks;

#define CHECK(cond)                                                                                 \
    do {                                                                                            \
        checks++;                                                                                   \
        if (!(cond)) {                                                                              \
            failures++;                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                \
        }                                                                                           \
    } while (0)

#define CHECK_EQ(a, b)                                                                              \
    do {                                                                                            \
        unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b);              \
        checks++;                                                                                   \
        if (a_ != b_) {                                                                             \
            failures++;                                                                             \
            fprintf(stderr, "%s:%d: %s == %llu, expected %s == %llu\n", __FILE__, __LINE__, #a, a_, \
                    #b, b_);                                                                        \
        }                                                                                           \
    } while (0)

static le_mem_PoolStats_t stats(le_mem_PoolRef_t pool)
{
    le_mem_PoolStats_t s;
    memset(&s, 0xff, sizeof s);
    le_mem_GetStats(pool, &s);
    return s;
}

/* The invariant of spec rule 6, checked on every stats read of these tests. */
static void check_free(le_mem_PoolRef_t pool)
{
    le_mem_PoolStats_t s = stats(pool);
    CHECK_EQ(s.numFree, le_mem_GetObjectCount(pool) - s.numBlocksInUse);
}

/* ---- The "Point" example of Legato's documentation. ---- */

typedef struct {
    int x;
    int y;
} Point_t;

static int pointsDestroyed;

static void PointDestructor(void *objPtr)
{
    Point_t *p = objPtr;
    CHECK_EQ(le_mem_GetRefCount(p), 0);
    p->x = p->y = -1;
    pointsDestroyed++;
}

static void test_points(void)
{
    le_mem_PoolRef_t pointPool = le_mem_CreatePool("PointPool", sizeof(Point_t));
    CHECK(pointPool != NULL);
    CHECK(le_mem_ExpandPool(pointPool, 12) == pointPool);
    le_mem_SetDestructor(pointPool, PointDestructor);
    CHECK(!le_mem_IsSubPool(pointPool));
    CHECK_EQ(le_mem_GetObjectCount(pointPool), 12);
    CHECK_EQ(le_mem_GetObjectSize(pointPool), sizeof(Point_t));
    CHECK_EQ(le_mem_GetObjectFullSize(pointPool), LE_MEM_BLOCK_SIZE(sizeof(Point_t)));

    Point_t *p = le_mem_ForceAlloc(pointPool);
    CHECK(p != NULL);
    CHECK_EQ((uintptr_t)p % sizeof(size_t), 0);
    p->x = 5;
    p->y = 10;
    CHECK_EQ(le_mem_GetRefCount(p), 1);
    CHECK_EQ(le_mem_GetBlockSize(p), sizeof(Point_t));
    le_mem_AddRef(p);
    CHECK_EQ(le_mem_GetRefCount(p), 2);
    le_mem_Release(p);
    CHECK_EQ(pointsDestroyed, 0);
    CHECK_EQ(p->x, 5);
    le_mem_Release(p);
    CHECK_EQ(pointsDestroyed, 1);

    Point_t *q = le_mem_Alloc(pointPool); /* the default policy: force */
    Point_t *r = le_mem_TryAlloc(pointPool);
    Point_t *s = le_mem_AssertAlloc(pointPool);
    CHECK(q && r && s && q != r && r != s && q != s);
    le_mem_PoolStats_t st = stats(pointPool);
    CHECK_EQ(st.numBlocksInUse, 3);
    CHECK_EQ(st.maxNumBlocksUsed, 3);
    CHECK_EQ(st.numAllocs, 4);
    CHECK_EQ(st.numOverflows, 0);
    CHECK_EQ(st.numFree, 9);
    le_mem_Release(q);
    le_mem_Release(r);
    le_mem_Release(s);
    CHECK_EQ(pointsDestroyed, 4);
    le_mem_ResetStats(pointPool);
    st = stats(pointPool);
    CHECK_EQ(st.numAllocs, 0);
    CHECK_EQ(st.numOverflows, 0);
    CHECK_EQ(st.maxNumBlocksUsed, 3);
    CHECK_EQ(st.numFree, 12);

    /* The default policy of the macros is force: an empty pool grows. */
    le_mem_PoolRef_t emptyPool = le_mem_CreatePool("PointPool.empty", sizeof(Point_t));
    Point_t *forced = le_mem_Alloc(emptyPool);
    void *varForced = le_mem_VarAlloc(emptyPool, sizeof(Point_t));
    CHECK(forced != NULL && varForced != NULL);
    CHECK_EQ(le_mem_GetObjectCount(emptyPool), 2);
    CHECK_EQ(stats(emptyPool).numOverflows, 2);
    le_mem_Release(forced);
    le_mem_Release(varForced);

    le_mem_SetDestructor(pointPool, NULL);
    le_mem_Release(le_mem_ForceAlloc(pointPool));
    CHECK_EQ(pointsDestroyed, 4);
    CHECK(le_mem_FindPool("PointPool") == pointPool);
}

/* ---- The worked example of spec/le_mem.md. ---- */

static void test_worked_example(void)
{
    le_mem_PoolRef_t P = le_mem_CreatePool("worked.P", 32);
    le_mem_ExpandPool(P, 100);
    static void *objs[110];
    for (int i = 0; i < 100; i++) {
        objs[i] = le_mem_AssertAlloc(P);
    }
    CHECK(le_mem_TryAlloc(P) == NULL);
    le_mem_SetNumObjsToForce(P, 3);
    for (int i = 100; i < 104; i++) {
        objs[i] = le_mem_ForceAlloc(P);
        CHECK(objs[i] != NULL);
    }
    le_mem_PoolStats_t s = stats(P);
    CHECK_EQ(le_mem_GetObjectCount(P), 106);
    CHECK_EQ(s.numOverflows, 2);
    CHECK_EQ(s.numFree, 2);
    CHECK_EQ(s.numAllocs, 104);
    CHECK_EQ(s.numBlocksInUse, 104);
    CHECK_EQ(s.maxNumBlocksUsed, 104);

    /* S1 of 10 while P has 10 free: P lends 10, its total and allocations stay. */
    for (int i = 0; i < 8; i++) {
        le_mem_Release(objs[i]);
    }
    CHECK_EQ(stats(P).numFree, 10);
    le_mem_PoolRef_t S1 = le_mem_CreateSubPool(P, "worked.S1", 10);
    CHECK(le_mem_IsSubPool(S1));
    s = stats(P);
    CHECK_EQ(s.numBlocksInUse, 106);
    CHECK_EQ(s.numFree, 0);
    CHECK_EQ(s.numAllocs, 104);
    CHECK_EQ(s.numOverflows, 2);
    CHECK_EQ(s.maxNumBlocksUsed, 106);
    CHECK_EQ(le_mem_GetObjectCount(P), 106);
    CHECK_EQ(le_mem_GetObjectCount(S1), 10);
    CHECK_EQ(le_mem_GetObjectSize(S1), 32);
    CHECK_EQ(stats(S1).numFree, 10);

    /* S2 expanded by 2 while P has 0 free: P grows by 2 and counts 2 overflows. */
    le_mem_PoolRef_t S2 = le_mem_CreateSubPool(P, "worked.S2", 0);
    CHECK_EQ(le_mem_GetObjectCount(S2), 0);
    CHECK(le_mem_ExpandPool(S2, 2) == S2);
    s = stats(P);
    CHECK_EQ(le_mem_GetObjectCount(P), 108);
    CHECK_EQ(s.numOverflows, 4);
    CHECK_EQ(s.numBlocksInUse, 108);
    CHECK_EQ(s.numAllocs, 104);
    CHECK_EQ(le_mem_GetObjectCount(S2), 2);

    /* Forced allocation on the empty S2 (force step 1): 1 overflow in S2, 1 shortfall in P. */
    void *a = le_mem_AssertAlloc(S2);
    void *b = le_mem_AssertAlloc(S2);
    CHECK(le_mem_TryAlloc(S2) == NULL);
    void *c = le_mem_ForceAlloc(S2);
    CHECK_EQ(le_mem_GetObjectCount(S2), 3);
    CHECK_EQ(stats(S2).numOverflows, 1);
    CHECK_EQ(stats(S2).numAllocs, 3);
    CHECK_EQ(stats(P).numOverflows, 5);
    CHECK_EQ(le_mem_GetObjectCount(P), 109);
    CHECK_EQ(le_mem_GetBlockSize(c), 32);
    le_mem_Release(a);
    le_mem_Release(b);
    le_mem_Release(c);

    /* Deleting S2 gives its 3 blocks back: P's in-use drops by 3, its total stays. */
    le_mem_DeleteSubPool(S2);
    CHECK(le_mem_FindPool("worked.S2") == NULL);
    s = stats(P);
    CHECK_EQ(s.numBlocksInUse, 106);
    CHECK_EQ(s.numFree, 3);
    CHECK_EQ(le_mem_GetObjectCount(P), 109);
    le_mem_DeleteSubPool(S1);
    CHECK_EQ(stats(P).numBlocksInUse, 96);
    check_free(P);

    /* ResetStats keeps maxNumBlocksUsed, in-use and total. */
    le_mem_ResetStats(P);
    s = stats(P);
    CHECK_EQ(s.numAllocs, 0);
    CHECK_EQ(s.numOverflows, 0);
    CHECK_EQ(s.maxNumBlocksUsed, 109);
    CHECK_EQ(s.numBlocksInUse, 96);
    CHECK_EQ(le_mem_GetObjectCount(P), 109);
    for (int i = 8; i < 104; i++) {
        le_mem_Release(objs[i]);
    }
    CHECK_EQ(stats(P).numBlocksInUse, 0);
}

/* ---- Block sizes: the C macros agree with the library. ---- */

static void test_block_sizes(void)
{
    CHECK_EQ(LE_MEM_BLOCK_OVERHEAD, sizeof(void *) + sizeof(size_t));
    char name[32];
    for (size_t size = 0; size <= 300; size++) {
        snprintf(name, sizeof name, "sizes.%zu", size);
        le_mem_PoolRef_t pool = le_mem_CreatePool(name, size);
        CHECK_EQ(le_mem_GetObjectFullSize(pool), LE_MEM_BLOCK_SIZE(size));
        CHECK_EQ(le_mem_GetObjectSize(pool), size);
        if (size == 8) {
            CHECK_EQ(le_mem_GetObjectFullSize(pool) - size, LE_MEM_BLOCK_OVERHEAD);
        }
    }
    if (sizeof(void *) == 8) {
        CHECK_EQ(LE_MEM_BLOCK_OVERHEAD, 16);
        CHECK_EQ(LE_MEM_BLOCK_SIZE(0), 24);
        CHECK_EQ(LE_MEM_BLOCK_SIZE(9), 32);
        CHECK_EQ(LE_MEM_BLOCK_SIZE(64), 80);
        CHECK_EQ(LE_MEM_BLOCK_SIZE(266), 288);
    }
}

/* ---- Reduced pools. ---- */

static size_t round_down(size_t n, size_t to)
{
    return n / to * to;
}

static void test_reduced_pools(void)
{
    le_mem_PoolRef_t big = le_mem_CreatePool("reduced.big", 64);
    le_mem_ExpandPool(big, 2);
    size_t S = le_mem_GetObjectFullSize(big);

    /* k = S / B(8) ways: objSize' = round_down(S / k - overhead, sizeof(size_t)). */
    size_t k = S / LE_MEM_BLOCK_SIZE(8);
    size_t size = round_down(S / k - LE_MEM_BLOCK_OVERHEAD, sizeof(size_t));
    le_mem_PoolRef_t small = le_mem_CreateReducedPool(big, "reduced.small", 4, 8);
    CHECK(le_mem_IsSubPool(small));
    CHECK_EQ(le_mem_GetObjectSize(small), size);
    CHECK_EQ(le_mem_GetObjectFullSize(small), LE_MEM_BLOCK_SIZE(size));
    size_t m = (4 + k - 1) / k;
    CHECK_EQ(le_mem_GetObjectCount(small), m * k);
    CHECK_EQ(stats(big).numBlocksInUse, m);
    CHECK_EQ(stats(big).numAllocs, 0);
    if (sizeof(void *) == 8) {
        CHECK_EQ(k, 3);
        CHECK_EQ(size, 8);
        CHECK_EQ(le_mem_GetObjectCount(small), 6);
    }
    /* Growth by whole super blocks: 1 more object takes 1 super block, adds k objects (and
     * the super-pool, now full, grows by the shortfall of 1). */
    le_mem_ExpandPool(small, 1);
    CHECK_EQ(le_mem_GetObjectCount(small), (m + 1) * k);
    CHECK_EQ(stats(big).numBlocksInUse, m + 1);

    /* Objects of the reduced pool are distinct, inside the lent blocks, and writable. */
    void *objs[64];
    size_t n = le_mem_GetObjectCount(small);
    for (size_t i = 0; i < n; i++) {
        objs[i] = le_mem_AssertAlloc(small);
        memset(objs[i], (int)i, size);
        CHECK_EQ(le_mem_GetBlockSize(objs[i]), size);
    }
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ(((unsigned char *)objs[i])[size - 1], (unsigned char)i);
        le_mem_Release(objs[i]);
    }
    /* A forced allocation on the empty reduced pool grows it by k objects (its step, 1,
     * rounded to a whole super block). */
    for (size_t i = 0; i < n; i++) {
        objs[i] = le_mem_AssertAlloc(small);
    }
    void *extra = le_mem_ForceAlloc(small);
    CHECK_EQ(le_mem_GetObjectCount(small), n + k);
    CHECK_EQ(stats(small).numOverflows, 1);
    le_mem_Release(extra);
    for (size_t i = 0; i < n; i++) {
        le_mem_Release(objs[i]);
    }
    le_mem_DeleteSubPool(small);
    CHECK_EQ(stats(big).numBlocksInUse, 0);

    /* k = 1 under a root pool: a new pool whose objects may exceed the super-pool's
     * (266 -> 272 with a 16-byte overhead). */
    le_mem_PoolRef_t p266 = le_mem_CreatePool("reduced.266", 266);
    le_mem_PoolRef_t r1 = le_mem_CreateReducedPool(p266, "reduced.r1", 1, 266);
    CHECK(r1 != p266);
    size_t expect = round_down(LE_MEM_BLOCK_SIZE(266) - LE_MEM_BLOCK_OVERHEAD, sizeof(size_t));
    CHECK_EQ(le_mem_GetObjectSize(r1), expect);
    if (sizeof(void *) == 8) {
        CHECK_EQ(le_mem_GetObjectSize(r1), 272);
    }
    CHECK_EQ(le_mem_GetObjectCount(r1), 1);
    CHECK_EQ(le_mem_GetObjectCount(p266), 1);
    CHECK_EQ(stats(p266).numOverflows, 1);

    /* k = 1 under a sub-pool: the same pool with one more reference. */
    le_mem_PoolRef_t r2 = le_mem_CreateReducedPool(r1, "reduced.r2", 5, 200);
    CHECK(r2 == r1);
    CHECK_EQ(le_mem_GetObjectCount(r1), 1);
    CHECK(le_mem_FindPool("reduced.r2") == NULL);
    /* A reduced pool of a reduced pool. */
    le_mem_PoolRef_t tiny = le_mem_CreateReducedPool(r1, "reduced.tiny", 1, 0);
    size_t kt = le_mem_GetObjectFullSize(r1) / LE_MEM_BLOCK_SIZE(0);
    CHECK_EQ(le_mem_GetObjectCount(tiny), kt);
    CHECK_EQ(le_mem_GetObjectSize(tiny), round_down(le_mem_GetObjectFullSize(r1) / kt - LE_MEM_BLOCK_OVERHEAD, sizeof(size_t)));
    CHECK_EQ(stats(r1).numBlocksInUse, 1);
    le_mem_DeleteSubPool(tiny);
    le_mem_DeleteSubPool(r2); /* drops one reference: r1 lives on */
    CHECK(le_mem_FindPool("reduced.r1") == r1);
    CHECK_EQ(le_mem_GetObjectCount(r1), 1);
    le_mem_DeleteSubPool(r1);
    CHECK(le_mem_FindPool("reduced.r1") == NULL);
    CHECK_EQ(stats(p266).numBlocksInUse, 0);

    /* A reduced pool of a plain sub-pool. */
    le_mem_PoolRef_t sub = le_mem_CreateSubPool(big, "reduced.sub", 1);
    le_mem_PoolRef_t subSmall = le_mem_CreateReducedPool(sub, "reduced.subSmall", 1, 24);
    CHECK_EQ(stats(sub).numBlocksInUse, 1);
    CHECK(le_mem_FindPool("reduced.subSmall") == subSmall);
    le_mem_DeleteSubPool(subSmall);
    le_mem_DeleteSubPool(sub);
    check_free(big);
}

/* ---- Variable-size allocation and StrDup walk up the chain. ---- */

static void test_var_alloc(void)
{
    le_mem_PoolRef_t big = le_mem_CreatePool("var.big", 256);
    le_mem_ExpandPool(big, 4);
    le_mem_PoolRef_t mid = le_mem_CreateReducedPool(big, "var.mid", 1, 64);
    le_mem_PoolRef_t small = le_mem_CreateReducedPool(mid, "var.small", 1, 16);
    size_t smallSize = le_mem_GetObjectSize(small);
    size_t midSize = le_mem_GetObjectSize(mid);
    CHECK(smallSize >= 16 && smallSize < midSize && midSize < 256);

    void *a = le_mem_VarAlloc(small, 10);
    CHECK_EQ(le_mem_GetBlockSize(a), smallSize);
    void *b = le_mem_TryVarAlloc(small, smallSize + 1);
    CHECK_EQ(le_mem_GetBlockSize(b), midSize);
    void *c = le_mem_AssertVarAlloc(small, 200);
    CHECK_EQ(le_mem_GetBlockSize(c), 256);
    void *d = le_mem_ForceVarAlloc(mid, 256);
    CHECK_EQ(le_mem_GetBlockSize(d), 256);

    char *s = le_mem_StrDup(small, "hi");
    CHECK(strcmp(s, "hi") == 0);
    CHECK_EQ(le_mem_GetBlockSize(s), smallSize);
    char longStr[120];
    memset(longStr, 'x', sizeof longStr - 1);
    longStr[sizeof longStr - 1] = '\0';
    char *t = le_mem_StrDup(small, longStr);
    CHECK(strcmp(t, longStr) == 0);
    CHECK_EQ(le_mem_GetBlockSize(t), 256);

    /* TryVarAlloc does not grow the pool it lands in (here: mid). */
    void *held[64];
    size_t n = 0;
    while ((held[n] = le_mem_TryVarAlloc(small, smallSize + 1)) != NULL) {
        CHECK_EQ(le_mem_GetBlockSize(held[n]), midSize);
        n++;
    }
    CHECK(n > 0);
    CHECK(le_mem_TryVarAlloc(small, midSize) == NULL);
    CHECK(le_mem_GetObjectCount(mid) == stats(mid).numBlocksInUse);
    for (size_t i = 0; i < n; i++) {
        le_mem_Release(held[i]);
    }
    le_mem_Release(a);
    le_mem_Release(b);
    le_mem_Release(c);
    le_mem_Release(d);
    le_mem_Release(s);
    le_mem_Release(t);
    le_mem_DeleteSubPool(small);
    le_mem_DeleteSubPool(mid);
    CHECK_EQ(stats(big).numBlocksInUse, 0);
}

/* ---- Static pools. ---- */

LE_MEM_DEFINE_STATIC_POOL(staticPoints, 4, sizeof(Point_t));

static int inside(const void *p, const void *base, size_t len)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)base;
    return a >= b && a < b + len;
}

static void test_static_pool(void)
{
    CHECK_EQ(sizeof(_mem_staticPointsData), 4 * LE_MEM_BLOCK_SIZE(sizeof(Point_t)));
    le_mem_PoolRef_t pool = le_mem_InitStaticPool(staticPoints, 4, sizeof(Point_t));
    CHECK(pool == &_mem_staticPointsPool);
    CHECK(le_mem_FindPool("staticPoints") == pool);
    CHECK_EQ(le_mem_GetObjectCount(pool), 4);
    Point_t *pts[5];
    for (int i = 0; i < 4; i++) {
        pts[i] = le_mem_TryAlloc(pool);
        CHECK(pts[i] != NULL);
        CHECK(inside(pts[i], _mem_staticPointsData, sizeof _mem_staticPointsData));
        pts[i]->x = i;
    }
    CHECK(le_mem_TryAlloc(pool) == NULL);
    /* Expanded later from the heap, like any pool. */
    pts[4] = le_mem_ForceAlloc(pool);
    CHECK(!inside(pts[4], _mem_staticPointsData, sizeof _mem_staticPointsData));
    CHECK_EQ(le_mem_GetObjectCount(pool), 5);
    CHECK_EQ(stats(pool).numOverflows, 1);
    le_mem_ExpandPool(pool, 3);
    CHECK_EQ(le_mem_GetObjectCount(pool), 8);
    for (int i = 0; i < 5; i++) {
        le_mem_Release(pts[i]);
    }
    /* Initialising again returns the same pool, unchanged. */
    CHECK(le_mem_InitStaticPool(staticPoints, 4, sizeof(Point_t)) == pool);
    CHECK_EQ(le_mem_GetObjectCount(pool), 8);
    check_free(pool);
}

/* ---- Names. ---- */

static void test_names(void)
{
    const char *longName = "names.0123456789abcdefghijklmnopqrstuvwxyz"; /* 42 bytes */
    le_mem_PoolRef_t pool = le_mem_CreatePool(longName, 8);
    char buf[64];
    memset(buf, 'Z', sizeof buf);
    CHECK(le_mem_GetName(pool, buf, sizeof buf) == LE_OK);
    CHECK_EQ(strlen(buf), 31);
    CHECK(strncmp(buf, longName, 31) == 0);
    /* Exactly fitting: 31 bytes + NUL. */
    CHECK(le_mem_GetName(pool, buf, 32) == LE_OK);
    memset(buf, 'Z', sizeof buf);
    CHECK(le_mem_GetName(pool, buf, 10) == LE_OVERFLOW);
    CHECK(strcmp(buf, "names.012") == 0);
    CHECK(buf[10] == 'Z');
    CHECK(le_mem_GetName(pool, buf, 1) == LE_OVERFLOW);
    CHECK(buf[0] == '\0');
    CHECK(le_mem_GetName(pool, buf, 0) == LE_OVERFLOW);

    /* The name given at creation finds the pool, and so do its 31 bytes kept. */
    CHECK(le_mem_FindPool(longName) == pool);
    char kept[32];
    memcpy(kept, longName, 31);
    kept[31] = '\0';
    CHECK(le_mem_FindPool(kept) == pool);
    CHECK(le_mem_FindPool("names.nothing") == NULL);
    CHECK(le_mem_FindPool(NULL) == NULL);

    /* Duplicates: the earliest registered is found. */
    le_mem_PoolRef_t first = le_mem_CreatePool("names.dup", 8);
    le_mem_PoolRef_t second = le_mem_CreatePool("names.dup", 16);
    CHECK(first != second);
    CHECK(le_mem_FindPool("names.dup") == first);

    /* Sub-pools are found until deleted; the name is copied at creation. */
    char subName[16];
    strcpy(subName, "names.sub");
    le_mem_PoolRef_t sub = le_mem_CreateSubPool(first, subName, 1);
    strcpy(subName, "names.XXX");
    CHECK(le_mem_FindPool("names.sub") == sub);
    CHECK(le_mem_GetName(sub, buf, sizeof buf) == LE_OK && strcmp(buf, "names.sub") == 0);
    le_mem_DeleteSubPool(sub);
    CHECK(le_mem_FindPool("names.sub") == NULL);

    /* Names that are not UTF-8 are matched byte for byte (issue 8: two such names that a
       lossy conversion makes equal used to find no pool). */
    le_mem_PoolRef_t bad1 = le_mem_CreatePool("names.bad\xff", 8);
    le_mem_PoolRef_t bad2 = le_mem_CreatePool("names.bad\xfe", 8);
    CHECK(bad1 != bad2);
    CHECK(le_mem_FindPool("names.bad\xff") == bad1);
    CHECK(le_mem_FindPool("names.bad\xfe") == bad2);
    CHECK(le_mem_FindPool("names.bad\xfd") == NULL);
}

/* ---- Destructors that call le_mem_*. ---- */

typedef struct Node {
    struct Node *next;
    int id;
} Node_t;

static le_mem_PoolRef_t nodePool;
static int nodesDestroyed;

static void NodeDestructor(void *objPtr)
{
    Node_t *node = objPtr;
    nodesDestroyed++;
    if (node->id < 0) {
        return; /* a scratch object of the destructor below */
    }
    /* No lock is held: look up pools, read stats, allocate, release other objects. */
    CHECK(le_mem_FindPool("dtor.nodes") == nodePool);
    le_mem_PoolStats_t s = stats(nodePool);
    CHECK(s.numBlocksInUse >= 1);
    Node_t *scratch = le_mem_ForceAlloc(nodePool);
    scratch->id = -1;
    scratch->next = NULL;
    le_mem_Release(scratch);
    if (node->next != NULL) {
        le_mem_Release(node->next); /* another object of the same pool */
    }
}

static void test_destructor_calls_le_mem(void)
{
    nodePool = le_mem_CreatePool("dtor.nodes", sizeof(Node_t));
    le_mem_ExpandPool(nodePool, 4);
    le_mem_SetDestructor(nodePool, NodeDestructor);
    Node_t *head = NULL;
    for (int i = 0; i < 3; i++) {
        Node_t *node = le_mem_ForceAlloc(nodePool);
        node->id = i;
        node->next = head;
        head = node;
    }
    le_mem_Release(head); /* releases the whole chain, one destructor inside another */
    CHECK_EQ(nodesDestroyed, 6); /* 3 nodes + 3 scratch objects */
    CHECK_EQ(stats(nodePool).numBlocksInUse, 0);

    /* Sub-pools inherit the destructor set before they were created. */
    le_mem_PoolRef_t sub = le_mem_CreateSubPool(nodePool, "dtor.sub", 1);
    Node_t *n = le_mem_ForceAlloc(sub);
    n->next = NULL;
    n->id = 7;
    le_mem_Release(n);
    CHECK_EQ(nodesDestroyed, 8);
    le_mem_DeleteSubPool(sub);
}

/* ---- Two threads hammering one pool. ---- */

enum { ROUNDS = 20000, HELD = 8 };

static le_mem_PoolRef_t hammerPool;
static long hammerDestroyed;
static pthread_mutex_t hammerLock = PTHREAD_MUTEX_INITIALIZER;

static void HammerDestructor(void *objPtr)
{
    (void)objPtr;
    pthread_mutex_lock(&hammerLock);
    hammerDestroyed++;
    pthread_mutex_unlock(&hammerLock);
}

static void *hammer(void *arg)
{
    uintptr_t tag = (uintptr_t)arg;
    uintptr_t *held[HELD] = {0};
    for (int round = 0; round < ROUNDS; round++) {
        int slot = round % HELD;
        if (held[slot] != NULL) {
            if (*held[slot] != tag + (uintptr_t)slot) {
                fprintf(stderr, "hammer: object overwritten\n");
                return (void *)1;
            }
            le_mem_Release(held[slot]);
        }
        uintptr_t *obj = (round % 3 == 0) ? le_mem_TryAlloc(hammerPool) : le_mem_ForceAlloc(hammerPool);
        if (obj == NULL) {
            obj = le_mem_ForceAlloc(hammerPool);
        }
        *obj = tag + (uintptr_t)slot;
        le_mem_AddRef(obj);
        le_mem_Release(obj);
        held[slot] = obj;
    }
    for (int slot = 0; slot < HELD; slot++) {
        le_mem_Release(held[slot]);
    }
    return NULL;
}

static void test_threads(void)
{
    hammerPool = le_mem_CreatePool("threads.hammer", 48);
    le_mem_ExpandPool(hammerPool, 4);
    le_mem_SetNumObjsToForce(hammerPool, 2);
    le_mem_SetDestructor(hammerPool, HammerDestructor);
    pthread_t t1, t2;
    CHECK(pthread_create(&t1, NULL, hammer, (void *)(uintptr_t)0x1000) == 0);
    CHECK(pthread_create(&t2, NULL, hammer, (void *)(uintptr_t)0x2000) == 0);
    void *r1, *r2;
    pthread_join(t1, &r1);
    pthread_join(t2, &r2);
    CHECK(r1 == NULL && r2 == NULL);
    le_mem_PoolStats_t s = stats(hammerPool);
    CHECK_EQ(s.numBlocksInUse, 0);
    CHECK_EQ(s.numAllocs, 2 * ROUNDS);
    CHECK_EQ(hammerDestroyed, 2 * ROUNDS);
    CHECK_EQ(s.numFree, le_mem_GetObjectCount(hammerPool));
    CHECK(s.maxNumBlocksUsed <= le_mem_GetObjectCount(hammerPool));
    CHECK(s.maxNumBlocksUsed >= HELD);
    /* Each overflow added the force step (2) to the 4 initial blocks. */
    CHECK_EQ(le_mem_GetObjectCount(hammerPool), 4 + 2 * s.numOverflows);
}

int main(void)
{
    test_points();
    test_worked_example();
    test_block_sizes();
    test_reduced_pools();
    test_var_alloc();
    test_static_pool();
    test_names();
    test_destructor_calls_le_mem();
    test_threads();
    printf("le_mem: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
