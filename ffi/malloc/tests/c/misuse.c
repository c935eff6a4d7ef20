/* Planted bugs and the malloc API's corner cases, selected by argv[1]. */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *keep;

static int leak(void) {
    char *a = malloc(100);
    keep = malloc(4242); /* the planted leak: never freed */
    keep = NULL;
    free(a);
    char *c = calloc(10, 10);
    c = realloc(c, 1000);
    free(c);
    return 0;
}

#define CHECK(c) do { if (!(c)) { printf("FAILED: %s (line %d)\n", #c, __LINE__); return 1; } } while (0)

static int api(void) {
    errno = 0;
    CHECK(malloc(SIZE_MAX) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
    void *p = NULL;
    CHECK(posix_memalign(&p, 3, 10) == EINVAL && p == NULL);
    CHECK(posix_memalign(&p, 4, 10) == EINVAL);
    CHECK(posix_memalign(&p, 4096, 10) == 0 && p && (uintptr_t)p % 4096 == 0);
    free(p);
    errno = 0;
    CHECK(aligned_alloc(24, 48) == NULL && errno == EINVAL);
    void *q = aligned_alloc(128, 256);
    CHECK(q && (uintptr_t)q % 128 == 0);
    free(q);
    q = memalign(48, 10); /* rounded up to 64, as glibc */
    CHECK(q && (uintptr_t)q % 64 == 0);
    free(q);
    long pg = sysconf(_SC_PAGESIZE);
    q = valloc(10);
    CHECK(q && (uintptr_t)q % pg == 0);
    free(q);
    q = pvalloc(1);
    CHECK(q && (uintptr_t)q % pg == 0 && malloc_usable_size(q) >= (size_t)pg);
    free(q);
    char *r = malloc(0);
    CHECK(r != NULL);
    free(r);
    r = malloc(10);
    strcpy(r, "123456789");
    errno = 0;
    CHECK(reallocarray(r, SIZE_MAX / 2, 4) == NULL && errno == ENOMEM && strcmp(r, "123456789") == 0);
    errno = 0;
    CHECK(realloc(r, SIZE_MAX - 4096) == NULL && errno == ENOMEM && strcmp(r, "123456789") == 0);
    r = reallocarray(r, 100, 10);
    CHECK(r && strcmp(r, "123456789") == 0 && malloc_usable_size(r) >= 1000);
    CHECK(realloc(r, 0) == NULL);
    CHECK(malloc_usable_size(NULL) == 0);
    free(NULL);
    CHECK(mallopt(M_TRIM_THRESHOLD, 64 * 1024) == 1);
    CHECK(mallopt(M_MMAP_THRESHOLD, 256 * 1024) == 1);
    CHECK(mallopt(M_MMAP_THRESHOLD, -1) == 0);
    CHECK(mallopt(12345, 1) == 0);
    char *big = malloc(1 << 20);
    CHECK(big);
    memset(big, 1, 1 << 20);
    struct mallinfo2 mi = mallinfo2();
    CHECK(mi.hblks >= 1 && mi.hblkhd >= (1 << 20));
    CHECK(mi.uordblks > 0 && mi.arena >= mi.uordblks);
    free(big);
    mi = mallinfo2();
    CHECK(mi.hblkhd < (1 << 20));
    puts("api ok");
    return 0;
}

int main(int argc, char **argv) {
    const char *m = argc > 1 ? argv[1] : "";
    if (!strcmp(m, "leak")) return leak();
    if (!strcmp(m, "api")) return api();
    if (!strcmp(m, "double")) { char *d = malloc(10); free(d); free(d); puts("survived"); return 0; }
    if (!strcmp(m, "overrun")) { char *d = malloc(10); memset(d, 'x', 11); free(d); puts("survived"); return 0; }
    if (!strcmp(m, "foreign")) { static long x[8]; free(&x[4]); puts("survived"); return 0; }
    return 2;
}
