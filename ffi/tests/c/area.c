/* area_malloc.h the way BeOS drivers use it: the module through get_module, pools with every
 * lock spec and address spec, malloc/calloc/realloc/free, bad input, two threads on one pool,
 * and the last put_module deleting what is left. */
#include "area_malloc.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);              \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static area_malloc_module_info *am;

static void use_pool(const void *pool)
{
    char *p = am->malloc(pool, 100);
    CHECK(p != NULL && (uintptr_t)p % (2 * sizeof(void *)) == 0);
    memset(p, 0x5a, 100);
    am->free(pool, p);
}

static void lock_and_address_specs(void)
{
    const uint32_t locks[] = {B_NO_LOCK, B_LAZY_LOCK, B_FULL_LOCK, B_CONTIGUOUS, B_LOMEM};
    for (size_t i = 0; i < sizeof locks / sizeof locks[0]; i++) {
        const void *pool = am->create_pool(B_ANY_ADDRESS, 64 * 1024, locks[i], B_READ_AREA | B_WRITE_AREA);
        if (pool == NULL) {
            /* Locking may be refused under a low RLIMIT_MEMLOCK: only the locking specs may fail. */
            CHECK(locks[i] == B_FULL_LOCK || locks[i] == B_CONTIGUOUS);
            continue;
        }
        use_pool(pool);
        CHECK(am->delete_pool(pool) == B_OK);
    }
    const uint32_t addrs[] = {B_ANY_ADDRESS, B_EXACT_ADDRESS, B_BASE_ADDRESS, B_ANY_KERNEL_ADDRESS};
    for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
        const void *pool = am->create_pool(addrs[i], 8192, B_NO_LOCK, B_WRITE_AREA);
        CHECK(pool != NULL);
        use_pool(pool);
        CHECK(am->delete_pool(pool) == B_OK);
    }
    CHECK(am->create_pool(99, 8192, B_NO_LOCK, B_WRITE_AREA) == NULL);              /* unknown spec */
    CHECK(am->create_pool(B_ANY_ADDRESS, 8192, 42, B_WRITE_AREA) == NULL);          /* unknown lock */
    CHECK(am->create_pool(B_ANY_ADDRESS, 8192, B_NO_LOCK, B_READ_AREA) == NULL);    /* not writable */
    CHECK(am->create_pool(B_ANY_ADDRESS, 0, B_NO_LOCK, B_WRITE_AREA) == NULL);      /* size 0 */
}

/* B_FULL_LOCK with RLIMIT_MEMLOCK at 0 (in a child): NULL (unless privileged), cleanly. */
static void full_lock_under_a_low_limit(void)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {0, 0};
        getrlimit(RLIMIT_MEMLOCK, &rl);
        rl.rlim_cur = 0;
        if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0) {
            _exit(0);
        }
        const void *locked = am->create_pool(B_ANY_ADDRESS, 1 << 20, B_FULL_LOCK, B_READ_AREA | B_WRITE_AREA);
        if (locked != NULL) { /* CAP_IPC_LOCK ignores the limit */
            use_pool(locked);
            _exit(am->delete_pool(locked) == B_OK ? 0 : 1);
        }
        /* A clean failure: the module still works. */
        const void *plain = am->create_pool(B_ANY_ADDRESS, 1 << 20, B_NO_LOCK, B_READ_AREA | B_WRITE_AREA);
        if (plain == NULL) {
            _exit(1);
        }
        use_pool(plain);
        _exit(am->delete_pool(plain) == B_OK && failures == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void allocation_semantics(void)
{
    const void *pool = am->create_pool(B_ANY_ADDRESS, 64 * 1024, B_NO_LOCK, B_READ_AREA | B_WRITE_AREA);
    const void *other = am->create_pool(B_ANY_ADDRESS, 64 * 1024, B_NO_LOCK, B_READ_AREA | B_WRITE_AREA);
    CHECK(pool != NULL && other != NULL && pool != other);

    void *z1 = am->malloc(pool, 0);
    void *z2 = am->malloc(pool, 0);
    CHECK(z1 != NULL && z2 != NULL && z1 != z2);
    am->free(pool, z1);
    am->free(pool, z2);

    /* calloc zeroes and checks the multiplication. */
    unsigned char *c = am->calloc(pool, 100, 7);
    CHECK(c != NULL);
    for (int i = 0; i < 700; i++) {
        if (c[i] != 0) {
            CHECK(!"calloc zeroed");
            break;
        }
    }
    CHECK(am->calloc(pool, SIZE_MAX / 2, 3) == NULL);
    CHECK(am->calloc(pool, (size_t)1 << 40, (size_t)1 << 40) == NULL);
    am->free(pool, c);

    /* realloc: NULL allocates, grows keeping contents, 0 frees, failure keeps the block. */
    char *r = am->realloc(pool, NULL, 16);
    CHECK(r != NULL);
    memcpy(r, "be operating sys", 16);
    r = am->realloc(pool, r, 4000);
    CHECK(r != NULL && memcmp(r, "be operating sys", 16) == 0);
    CHECK(am->realloc(pool, r, 1 << 20) == NULL); /* bigger than the pool: NULL, r intact */
    CHECK(memcmp(r, "be operating sys", 16) == 0);
    CHECK(am->realloc(pool, r, 0) == NULL); /* frees */

    /* The pool never grows: fill it until malloc says NULL, then free everything. */
    void *blocks[4096];
    int n = 0;
    while (n < 4096 && (blocks[n] = am->malloc(pool, 256)) != NULL) {
        memset(blocks[n], n, 256);
        n++;
    }
    CHECK(n > 100 && n < 4096);
    CHECK(am->malloc(pool, 256) == NULL);
    for (int i = 0; i < n; i++) {
        am->free(pool, blocks[i]);
    }
    CHECK(am->malloc(pool, 256) != NULL); /* usable again (leaked on purpose: delete frees it) */

    /* free(NULL) is a no-op; a pointer of another pool is detected and ignored. */
    am->free(pool, NULL);
    char *theirs = am->malloc(other, 64);
    memset(theirs, 'o', 64);
    am->free(pool, theirs);                      /* logged, ignored */
    CHECK(am->realloc(pool, theirs, 128) == NULL); /* logged, untouched */
    CHECK(theirs[63] == 'o');
    am->free(other, theirs); /* still a live block of `other` */
    int x;
    am->free(pool, &x); /* a pointer into no pool at all */

    /* Unknown pools. */
    CHECK(am->delete_pool(pool) == B_OK);
    CHECK(am->delete_pool(pool) == B_ERROR);
    CHECK(am->malloc(pool, 10) == NULL);
    CHECK(am->delete_pool(NULL) == B_ERROR);
    CHECK(am->delete_pool(other) == B_OK);
}

/* Two threads hammering one pool. */
static const void *shared;
static void *hammer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    void *mine[32] = {0};
    for (int i = 0; i < 20000; i++) {
        int k = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 32;
        if (mine[k] != NULL) {
            am->free(shared, mine[k]);
            mine[k] = NULL;
        } else {
            mine[k] = am->malloc(shared, (size_t)(k * 13 + 1));
            if (mine[k] != NULL) {
                memset(mine[k], k, (size_t)(k * 13 + 1));
            }
        }
    }
    for (int k = 0; k < 32; k++) {
        am->free(shared, mine[k]);
    }
    return NULL;
}

static void threads(void)
{
    shared = am->create_pool(B_ANY_ADDRESS, 256 * 1024, B_NO_LOCK, B_READ_AREA | B_WRITE_AREA);
    CHECK(shared != NULL);
    pthread_t t1, t2;
    pthread_create(&t1, NULL, hammer, (void *)1);
    pthread_create(&t2, NULL, hammer, (void *)2);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    CHECK(am->delete_pool(shared) == B_OK);
}

int main(void)
{
    module_info *info = NULL;
    CHECK(get_module("generic/nonexistent/v1", &info) == B_ENTRY_NOT_FOUND);
    CHECK(get_module(NULL, &info) == B_ENTRY_NOT_FOUND);
    CHECK(put_module(B_AREA_MALLOC_MODULE_NAME) == B_ERROR); /* not held yet */
    CHECK(get_module(B_AREA_MALLOC_MODULE_NAME, (module_info **)&am) == B_OK);
    CHECK(am != NULL && strcmp(am->minfo.name, B_AREA_MALLOC_MODULE_NAME) == 0);
    CHECK(am->minfo.std_ops(B_MODULE_INIT) == B_OK);
    CHECK(B_NO_MEMORY == INT32_MIN && B_BAD_VALUE == INT32_MIN + 5 && B_ENTRY_NOT_FOUND == INT32_MIN + 0x6003);

    lock_and_address_specs();
    full_lock_under_a_low_limit();
    allocation_semantics();
    threads();

    /* Reference counting: pools survive until the last user puts the module away. */
    area_malloc_module_info *again = NULL;
    CHECK(get_module(B_AREA_MALLOC_MODULE_NAME, (module_info **)&again) == B_OK && again == am);
    const void *left = am->create_pool(B_ANY_ADDRESS, 8192, B_NO_LOCK, B_WRITE_AREA);
    CHECK(put_module(B_AREA_MALLOC_MODULE_NAME) == B_OK);
    void *still = am->malloc(left, 10);
    CHECK(still != NULL); /* one user left: the pool lives */
    CHECK(put_module(B_AREA_MALLOC_MODULE_NAME) == B_OK); /* last user: pools deleted */
    CHECK(am->malloc(left, 10) == NULL);
    CHECK(am->delete_pool(left) == B_ERROR);
    CHECK(put_module(B_AREA_MALLOC_MODULE_NAME) == B_ERROR);

    if (failures != 0) {
        fprintf(stderr, "area.c: %d failures\n", failures);
        return 1;
    }
    return 0;
}
