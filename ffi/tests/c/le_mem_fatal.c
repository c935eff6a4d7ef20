/* le_mem.h fatal cases: each runs in a fork()ed child, which must exit with EXIT_FAILURE after
 * logging exactly one error line that names the function (and the pool, where there is one).
 *
 * This file also builds with LE_MEM_ALLOC_ASSERT: le_mem_Alloc / le_mem_VarAlloc take the
 * assert policy (le_mem.c checks the default force policy). */
#define LE_MEM_ALLOC_ASSERT
#include "le_mem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;
static int cases;

/* Runs `body` in a child with stderr captured; checks the exit status and the log. */
static void expect_fatal(const char *what, void (*body)(void), const char *function, const char *pool)
{
    cases++;
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(2);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        body();
        _exit(77); /* the body returned: not fatal */
    }
    close(fds[1]);
    char log[8192];
    size_t len = 0;
    ssize_t n;
    while ((n = read(fds[0], log + len, sizeof log - 1 - len)) > 0) {
        len += (size_t)n;
    }
    log[len] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);

    int errorLines = 0;
    for (const char *p = log; (p = strstr(p, "ERROR")) != NULL; p++) {
        errorLines++;
    }
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == EXIT_FAILURE && errorLines == 1 &&
             strstr(log, function) != NULL && (pool == NULL || strstr(log, pool) != NULL);
    if (getenv("LE_MEM_FATAL_VERBOSE") != NULL) {
        fprintf(stderr, "[%s] %s", what, log);
    }
    if (!ok) {
        failures++;
        fprintf(stderr, "FAIL %s: status %d (exited %d, code %d), %d error lines; log:\n%s\n", what, status,
                WIFEXITED(status), WIFEXITED(status) ? WEXITSTATUS(status) : -1, errorLines, log);
    }
}

typedef struct {
    int a;
    int b;
} Obj_t;

static le_mem_PoolRef_t pool;    /* 2 blocks, none allocated */
static le_mem_PoolRef_t sub;     /* sub-pool of `pool`, 1 block */
static le_mem_PoolRef_t reduced; /* reduced pool of `big` */
static le_mem_PoolRef_t big;

/* ---- NULL pool references and NULL arguments. ---- */

static void null_pool_try_alloc(void) { (void)le_mem_TryAlloc(NULL); }
static void null_pool_force_alloc(void) { (void)le_mem_ForceAlloc(NULL); }
static void null_pool_expand(void) { (void)le_mem_ExpandPool(NULL, 1); }
static void null_pool_stats(void)
{
    le_mem_PoolStats_t s;
    le_mem_GetStats(NULL, &s);
}
static void null_super_pool(void) { (void)le_mem_CreateSubPool(NULL, "x", 1); }
static void null_pool_delete(void) { le_mem_DeleteSubPool(NULL); }
static void null_stats_ptr(void) { le_mem_GetStats(pool, NULL); }
static void null_name(void) { (void)le_mem_CreatePool(NULL, 8); }
static void null_str(void) { (void)le_mem_StrDup(pool, NULL); }
static void null_name_buffer(void) { (void)le_mem_GetName(pool, NULL, 8); }

static void uninitialised_pool(void)
{
    static le_mem_Pool_t zeroed;
    (void)le_mem_TryAlloc(&zeroed);
}

static void deleted_sub_pool(void)
{
    le_mem_PoolRef_t doomed = le_mem_CreateSubPool(pool, "fatal.doomed", 1);
    le_mem_DeleteSubPool(doomed);
    (void)le_mem_TryAlloc(doomed);
}

/* ---- NULL and foreign objects. ---- */

static void null_object_release(void) { le_mem_Release(NULL); }
static void null_object_add_ref(void) { le_mem_AddRef(NULL); }
static void null_object_ref_count(void) { (void)le_mem_GetRefCount(NULL); }
static void null_object_block_size(void) { (void)le_mem_GetBlockSize(NULL); }

/* A malloc'd block dressed up with a plausible header: a pool pointer (the pool reference,
 * which is not what object headers hold) and a count of 1. */
static void foreign_malloc_block(void)
{
    size_t *blk = malloc(8 * sizeof(size_t));
    blk[0] = (size_t)(uintptr_t)pool;
    blk[1] = 1;
    le_mem_Release(blk + 2);
}

/* A stack array (zero header). */
static void foreign_stack_array(void)
{
    size_t arr[8];
    memset(arr, 0, sizeof arr);
    le_mem_Release(&arr[4]);
}

/* An object pointer moved by one byte. */
static void misaligned_object(void)
{
    char *obj = le_mem_ForceAlloc(pool);
    le_mem_AddRef(obj + 1);
}

/* ---- Reference counts. ---- */

static void double_release(void)
{
    void *obj = le_mem_ForceAlloc(pool);
    le_mem_Release(obj);
    le_mem_Release(obj);
}

static void add_ref_of_free_block(void)
{
    void *obj = le_mem_ForceAlloc(pool);
    le_mem_Release(obj);
    le_mem_AddRef(obj);
}

/* ---- Allocation policies. ---- */

static void assert_alloc_on_empty_pool(void)
{
    (void)le_mem_AssertAlloc(pool);
    (void)le_mem_AssertAlloc(pool);
    (void)le_mem_AssertAlloc(pool); /* the pool has 2 blocks */
}

static void alloc_macro_asserts(void)
{
    le_mem_PoolRef_t empty = le_mem_CreatePool("fatal.empty", 8);
    (void)le_mem_Alloc(empty); /* LE_MEM_ALLOC_ASSERT: le_mem_AssertAlloc */
}

static void var_alloc_macro_asserts(void)
{
    le_mem_PoolRef_t empty = le_mem_CreatePool("fatal.varEmpty", 64);
    (void)le_mem_VarAlloc(empty, 10); /* LE_MEM_ALLOC_ASSERT: le_mem_AssertVarAlloc */
}

static void var_alloc_nothing_large_enough(void) { (void)le_mem_TryVarAlloc(reduced, 1000); }
static void force_var_alloc_nothing_large_enough(void) { (void)le_mem_ForceVarAlloc(pool, 1000); }

/* ---- Sub-pools. ---- */

static void busy_delete_sub_pool(void)
{
    void *obj = le_mem_AssertAlloc(sub);
    (void)obj;
    le_mem_DeleteSubPool(sub);
}

static void sub_pool_of_sub_pool(void) { (void)le_mem_CreateSubPool(sub, "fatal.subsub", 1); }
static void sub_pool_of_reduced_pool(void) { (void)le_mem_CreateSubPool(reduced, "fatal.subred", 1); }
static void reduced_pool_too_large(void) { (void)le_mem_CreateReducedPool(pool, "fatal.toolarge", 1, 1000); }
static void delete_root_pool(void) { le_mem_DeleteSubPool(pool); }

/* ---- Static pools. ---- */

LE_MEM_DEFINE_STATIC_POOL(tooSmall, 2, 16);

static void static_pool_array_too_small(void) { (void)le_mem_InitStaticPool(tooSmall, 4, 16); }

int main(void)
{
    pool = le_mem_CreatePool("fatal.pool", sizeof(Obj_t));
    le_mem_ExpandPool(pool, 2);
    sub = le_mem_CreateSubPool(pool, "fatal.sub", 1);
    big = le_mem_CreatePool("fatal.big", 64);
    reduced = le_mem_CreateReducedPool(big, "fatal.reduced", 1, 8);
    le_mem_ExpandPool(big, 1);

    /* The assert policy allocates normally while blocks are free. */
    void *obj = le_mem_Alloc(big);
    void *var = le_mem_VarAlloc(reduced, 4);
    if (obj == NULL || var == NULL || le_mem_GetBlockSize(var) != le_mem_GetObjectSize(reduced)) {
        fprintf(stderr, "FAIL: le_mem_Alloc/le_mem_VarAlloc with free blocks\n");
        failures++;
    }
    le_mem_Release(obj);
    le_mem_Release(var);

    expect_fatal("TryAlloc(NULL)", null_pool_try_alloc, "le_mem_TryAlloc", "NULL pool");
    expect_fatal("ForceAlloc(NULL)", null_pool_force_alloc, "le_mem_ForceAlloc", "NULL pool");
    expect_fatal("ExpandPool(NULL)", null_pool_expand, "le_mem_ExpandPool", "NULL pool");
    expect_fatal("GetStats(NULL)", null_pool_stats, "le_mem_GetStats", "NULL pool");
    expect_fatal("CreateSubPool(NULL)", null_super_pool, "le_mem_CreateSubPool", "NULL pool");
    expect_fatal("DeleteSubPool(NULL)", null_pool_delete, "le_mem_DeleteSubPool", "NULL pool");
    expect_fatal("GetStats(pool, NULL)", null_stats_ptr, "le_mem_GetStats", "fatal.pool");
    expect_fatal("CreatePool(NULL)", null_name, "le_mem_CreatePool", "NULL pool name");
    expect_fatal("StrDup(pool, NULL)", null_str, "le_mem_StrDup", "fatal.pool");
    expect_fatal("GetName(pool, NULL, 8)", null_name_buffer, "le_mem_GetName", "fatal.pool");
    expect_fatal("uninitialised le_mem_Pool_t", uninitialised_pool, "le_mem_TryAlloc", "bad magic");
    expect_fatal("use of a deleted sub-pool", deleted_sub_pool, "le_mem_TryAlloc", "fatal.doomed");

    expect_fatal("Release(NULL)", null_object_release, "le_mem_Release", "NULL object");
    expect_fatal("AddRef(NULL)", null_object_add_ref, "le_mem_AddRef", "NULL object");
    expect_fatal("GetRefCount(NULL)", null_object_ref_count, "le_mem_GetRefCount", "NULL object");
    expect_fatal("GetBlockSize(NULL)", null_object_block_size, "le_mem_GetBlockSize", "NULL object");
    expect_fatal("Release(malloc'd block)", foreign_malloc_block, "le_mem_Release", "foreign pointer");
    expect_fatal("Release(stack array)", foreign_stack_array, "le_mem_Release", "foreign pointer");
    expect_fatal("AddRef(obj + 1)", misaligned_object, "le_mem_AddRef", "misaligned");

    expect_fatal("double release", double_release, "le_mem_Release", "fatal.pool");
    expect_fatal("AddRef of a free block", add_ref_of_free_block, "le_mem_AddRef", "fatal.pool");

    expect_fatal("AssertAlloc on an empty pool", assert_alloc_on_empty_pool, "le_mem_AssertAlloc", "fatal.pool");
    expect_fatal("le_mem_Alloc with LE_MEM_ALLOC_ASSERT", alloc_macro_asserts, "le_mem_AssertAlloc", "fatal.empty");
    expect_fatal("le_mem_VarAlloc with LE_MEM_ALLOC_ASSERT", var_alloc_macro_asserts, "le_mem_AssertVarAlloc",
                 "fatal.varEmpty");
    expect_fatal("TryVarAlloc: no pool large enough", var_alloc_nothing_large_enough, "le_mem_TryVarAlloc",
                 "fatal.reduced");
    expect_fatal("ForceVarAlloc: no pool large enough", force_var_alloc_nothing_large_enough,
                 "le_mem_ForceVarAlloc", "fatal.pool");

    expect_fatal("busy DeleteSubPool", busy_delete_sub_pool, "le_mem_DeleteSubPool", "fatal.sub");
    expect_fatal("sub-pool of a sub-pool", sub_pool_of_sub_pool, "le_mem_CreateSubPool", "fatal.sub");
    expect_fatal("sub-pool of a reduced pool", sub_pool_of_reduced_pool, "le_mem_CreateSubPool", "fatal.reduced");
    expect_fatal("reduced pool larger than its super-pool", reduced_pool_too_large, "le_mem_CreateReducedPool",
                 "fatal.pool");
    expect_fatal("DeleteSubPool of a root pool", delete_root_pool, "le_mem_DeleteSubPool", "fatal.pool");
    expect_fatal("static pool array too small", static_pool_array_too_small, "le_mem_InitStaticPool", "tooSmall");

    /* The parent is untouched by its children's deaths. */
    le_mem_PoolStats_t s;
    le_mem_GetStats(pool, &s);
    if (s.numBlocksInUse != 1 || le_mem_GetObjectCount(sub) != 1) {
        fprintf(stderr, "FAIL: parent state changed (in use %zu)\n", s.numBlocksInUse);
        failures++;
    }

    printf("le_mem fatal cases: %d cases, %d failed\n", cases, failures);
    return failures == 0 ? 0 : 1;
}
