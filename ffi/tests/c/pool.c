/* pool.h as Plan 9's own malloc uses it: a Pool declared with designated initialisers, an
 * sbrk-like alloc callback over a static arena and a merge callback, lock/unlock, print and
 * panic callbacks; every function and every flag. Prints what failed and exits non-zero. */
#include "pool.h"

#include <stdarg.h>
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

/* ---- an sbrk over a static arena ---- */
static _Alignas(16) unsigned char brkmem[4 << 20];
static size_t brkused;
static int nalloc, nmerge, nfreearena;

static void *sbrkalloc(unsigned long n)
{
    if (n > sizeof brkmem - brkused) {
        return NULL;
    }
    void *p = brkmem + brkused;
    brkused += (n + 15) & ~(size_t)15;
    nalloc++;
    return p;
}

/* Everything sbrk returns is contiguous: any two arenas merge (lo < hi guaranteed). */
static int sbrkmerge(void *lo, void *hi)
{
    nmerge++;
    return (uintptr_t)lo < (uintptr_t)hi;
}

static void arenafree(void *p, unsigned long n)
{
    (void)p;
    (void)n;
    nfreearena++;
}

/* ---- lock, print, panic, logstack, move ---- */
static int locked, nlock, nunlock, nlogstack;
static void plock(Pool *p)
{
    (void)p;
    if (locked) {
        fprintf(stderr, "lock: already locked\n");
        failures++;
    }
    locked = 1;
    nlock++;
}
static void punlock(Pool *p)
{
    (void)p;
    locked = 0;
    nunlock++;
}

static char printed[1 << 16];
static size_t nprinted;
static int nlines;
static void pprint(Pool *p, char *fmt, ...)
{
    (void)p;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(printed + nprinted, sizeof printed - nprinted, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof printed - nprinted - 1) {
        nprinted += (size_t)n;
        printed[nprinted++] = '\n';
        printed[nprinted] = '\0';
    }
    nlines++;
}
static void clearprinted(void)
{
    nprinted = 0;
    nlines = 0;
    printed[0] = '\0';
}

static void ppanic(Pool *p, char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "unexpected panic in pool %s: ", p->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(3);
}

static void plogstack(Pool *p)
{
    (void)p;
    nlogstack++;
}

static Pool mainmem = {
    .name = "mainmem",
    .maxsize = 3 << 20,
    .minarena = 64 * 1024,
    .quantum = 32,
    .minblock = 64,
    .alloc = sbrkalloc,
    .merge = sbrkmerge,
    .flags = 0,
    .lock = plock,
    .unlock = punlock,
    .print = pprint,
    .panic = ppanic,
    .logstack = plogstack,
};

static void counters_consistent(Pool *p)
{
    CHECK(p->curalloc + p->curfree <= p->cursize);
    CHECK(p->cursize <= p->maxsize);
}

static void basics(void)
{
    void *z1 = poolalloc(&mainmem, 0);
    void *z2 = poolalloc(&mainmem, 0);
    CHECK(z1 != NULL && z2 != NULL && z1 != z2);
    CHECK(nalloc == 1 && mainmem.cursize == 64 * 1024);
    void *v[64];
    for (int i = 0; i < 64; i++) {
        v[i] = poolalloc(&mainmem, (unsigned long)(i * 37 + 1));
        CHECK(v[i] != NULL);
        CHECK((uintptr_t)v[i] % (2 * sizeof(void *)) == 0);
        memset(v[i], i, (size_t)(i * 37 + 1));
        counters_consistent(&mainmem);
    }
    for (int i = 0; i < 64; i++) {
        unsigned char *b = v[i];
        for (int k = 0; k < i * 37 + 1; k++) {
            if (b[k] != (unsigned char)i) {
                CHECK(!"block contents kept");
                break;
            }
        }
        poolblockcheck(&mainmem, v[i]);
    }
    /* Growth: more than one minarena; the arenas were merged. */
    void *big = poolalloc(&mainmem, 100000);
    CHECK(big != NULL);
    CHECK(nalloc >= 2 && nmerge >= 1);
    CHECK(mainmem.cursize >= 64 * 1024 + 100000);
    counters_consistent(&mainmem);
    /* Over maxsize: NULL, the pool intact. */
    CHECK(poolalloc(&mainmem, 4ul << 20) == NULL);
    CHECK(poolalloc(&mainmem, (unsigned long)-1) == NULL);
    int nf = mainmem.nfree;
    for (int i = 0; i < 64; i++) {
        poolfree(&mainmem, v[i]);
    }
    poolfree(&mainmem, NULL); /* no-op, not counted */
    CHECK(mainmem.nfree == nf + 64);
    poolfree(&mainmem, big);
    poolfree(&mainmem, z1);
    poolfree(&mainmem, z2);
    CHECK(mainmem.curalloc == 0);
    poolcheck(&mainmem);
    CHECK(nlock == nunlock && nlock > 0 && !locked);
    CHECK(poolalloc(NULL, 10) == NULL); /* NULL pool: logged, NULL */
}

static void msize_and_realloc(void)
{
    char *s = poolalloc(&mainmem, 10);
    unsigned long m = poolmsize(&mainmem, s);
    CHECK(m >= 10);
    memset(s, 'x', m); /* the whole of what msize returned is usable */
    poolblockcheck(&mainmem, s);
    CHECK(poolmsize(&mainmem, NULL) == 0);

    char *r = poolrealloc(&mainmem, NULL, 50); /* realloc(NULL) allocates */
    CHECK(r != NULL);
    memcpy(r, "plan 9 from bell labs", 22);
    r = poolrealloc(&mainmem, r, 5000);
    CHECK(r != NULL && memcmp(r, "plan 9 from bell labs", 22) == 0);
    r = poolrealloc(&mainmem, r, 8);
    CHECK(r != NULL && memcmp(r, "plan 9 f", 8) == 0);
    char *keep = r;
    CHECK(poolrealloc(&mainmem, r, 8ul << 20) == NULL); /* too big: NULL, old block valid */
    CHECK(memcmp(keep, "plan 9 f", 8) == 0);
    poolblockcheck(&mainmem, keep);
    int nf = mainmem.nfree;
    CHECK(poolrealloc(&mainmem, keep, 0) == NULL); /* realloc to 0 frees */
    CHECK(mainmem.nfree == nf + 1);
    poolfree(&mainmem, s);
    poolcheck(&mainmem);
}

static void allocalign(void)
{
    void *a = poolallocalign(&mainmem, 100, 64, 8, 0);
    CHECK(a != NULL && (uintptr_t)a % 64 == 8);
    void *b = poolallocalign(&mainmem, 100, 64, -8, 0);
    CHECK(b != NULL && (uintptr_t)b % 64 == 56);
    void *c = poolallocalign(&mainmem, 10, 24, 5, 0); /* not a power of two */
    CHECK(c != NULL && (uintptr_t)c % 24 == 5);
    void *d = poolallocalign(&mainmem, 100, 16, 0, 128);
    CHECK(d != NULL && (uintptr_t)d / 128 == ((uintptr_t)d + 99) / 128);
    void *e = poolallocalign(&mainmem, 4096, 4096, 0, 4096);
    CHECK(e != NULL && (uintptr_t)e % 4096 == 0);
    memset(a, 1, 100);
    memset(b, 2, 100);
    memset(c, 3, 10);
    memset(d, 4, 100);
    memset(e, 5, 4096);
    /* align 0 asks for no alignment (offset ignored); with a span the block stays inside one. */
    void *f = poolallocalign(&mainmem, 100, 0, 7, 0);
    void *g = poolallocalign(&mainmem, 100, 0, 0, 128);
    CHECK(f != NULL && g != NULL);
    CHECK((uintptr_t)g / 128 == ((uintptr_t)g + 99) / 128);
    poolfree(&mainmem, f);
    poolfree(&mainmem, g);
    /* Bad input: a span smaller than the size. */
    CHECK(poolallocalign(&mainmem, 300, 16, 0, 256) == NULL);
    poolcheck(&mainmem);
    poolfree(&mainmem, a);
    poolfree(&mainmem, b);
    poolfree(&mainmem, c);
    poolfree(&mainmem, d);
    poolfree(&mainmem, e);
    poolcheck(&mainmem);
}

/* ---- compaction with a move callback that fixes the caller's pointers ---- */
#define NPTR 32
static void *ptrs[NPTR];
static int nmoves;
static void fixptr(void *from, void *to)
{
    nmoves++;
    for (int i = 0; i < NPTR; i++) {
        if (ptrs[i] == from) {
            ptrs[i] = to;
            return;
        }
    }
    fprintf(stderr, "move: %p is not one of ours\n", from);
    failures++;
}

static _Alignas(16) unsigned char compactmem[256 * 1024];
static size_t compactused;
static void *compactalloc(unsigned long n)
{
    if (n > sizeof compactmem - compactused) {
        return NULL;
    }
    void *p = compactmem + compactused;
    compactused += (n + 15) & ~(size_t)15;
    return p;
}

static void compaction(void)
{
    Pool cp = {
        .name = "compacted",
        .maxsize = sizeof compactmem,
        .minarena = 32 * 1024,
        .quantum = 16,
        .alloc = compactalloc,
        .move = fixptr,
        .print = pprint,
        .panic = ppanic,
    };
    CHECK(poolcompact(&cp) == 0); /* nothing freed yet */
    for (int i = 0; i < NPTR; i++) {
        ptrs[i] = poolalloc(&cp, 200);
        CHECK(ptrs[i] != NULL);
        memset(ptrs[i], 'a' + i % 26, 200);
    }
    for (int i = 0; i < NPTR; i += 2) {
        poolfree(&cp, ptrs[i]);
        ptrs[i] = NULL;
    }
    CHECK(cp.nfree == NPTR / 2 && cp.lastcompact == 0);
    CHECK(poolcompact(&cp) == 1);
    CHECK(nmoves > 0 && cp.lastcompact == cp.nfree);
    for (int i = 1; i < NPTR; i += 2) {
        unsigned char *b = ptrs[i];
        CHECK(poolisoverlap(&cp, b, 200) == 1);
        for (int k = 0; k < 200; k++) {
            if (b[k] != 'a' + i % 26) {
                CHECK(!"moved contents kept");
                break;
            }
        }
        poolblockcheck(&cp, b);
    }
    CHECK(poolcompact(&cp) == 0); /* nothing freed since */
    poolcheck(&cp);
    counters_consistent(&cp);
    int x = 0;
    CHECK(poolisoverlap(&cp, &x, sizeof x) == 0);
    /* poolreset frees everything. */
    poolreset(&cp);
    CHECK(cp.curalloc == 0);
    CHECK(poolalloc(&cp, 1000) != NULL);
    poolcheck(&cp);

    /* Without move, compaction does nothing. */
    void *t = poolalloc(&mainmem, 100);
    poolfree(&mainmem, t);
    CHECK(poolcompact(&mainmem) == 0);
    CHECK(poolcompact(NULL) == 0);
}

/* ---- flags ---- */
static void flags(void)
{
    /* LOGGING: a line at the start and end of each call, and logstack. */
    clearprinted();
    nlogstack = 0;
    mainmem.flags = POOL_LOGGING;
    void *v = poolalloc(&mainmem, 24);
    CHECK(nlines == 2 && nlogstack == 2);
    CHECK(strstr(printed, "begin") != NULL && strstr(printed, "end") != NULL);
    poolfree(&mainmem, v);

    /* VERBOSITY: the pool is printed on entry and exit. */
    clearprinted();
    mainmem.flags = POOL_VERBOSITY;
    v = poolalloc(&mainmem, 24);
    CHECK(nlines > 4 && strstr(printed, "cursize") != NULL);
    poolfree(&mainmem, v);

    /* DEBUGGING: internal detail (a new arena, here). */
    clearprinted();
    mainmem.flags = POOL_DEBUGGING;
    v = poolalloc(&mainmem, 1 << 20);
    CHECK(v != NULL && nlines >= 1 && strstr(printed, "arena") != NULL);
    poolfree(&mainmem, v);

    /* ANTAGONISM: new blocks hold a non-zero pattern. */
    mainmem.flags = POOL_ANTAGONISM;
    unsigned char *a = poolalloc(&mainmem, 64);
    int nonzero = 0;
    for (int i = 0; i < 64; i++) {
        nonzero += a[i] != 0;
    }
    CHECK(nonzero == 64);
    poolfree(&mainmem, a);

    /* PARANOIA: the whole pool is checked on every call (and it is clean). */
    mainmem.flags = POOL_PARANOIA;
    v = poolalloc(&mainmem, 100);
    poolfree(&mainmem, v);

    /* NOREUSE: a freed block is never handed out again. */
    mainmem.flags = POOL_NOREUSE;
    void *n1 = poolalloc(&mainmem, 48);
    poolfree(&mainmem, n1);
    void *n2 = poolalloc(&mainmem, 48);
    CHECK(n2 != n1);
    poolfree(&mainmem, n2);

    /* TOLERANCE: one NUL past the end is printed, not a panic. */
    clearprinted();
    mainmem.flags = POOL_TOLERANCE;
    char *s = poolalloc(&mainmem, 5);
    memcpy(s, "hello", 6); /* the classic forgotten terminator */
    poolblockcheck(&mainmem, s);
    poolcheck(&mainmem);
    poolfree(&mainmem, s);
    CHECK(strstr(printed, "tolerated") != NULL);

    /* pooldump: at least one line per block. */
    mainmem.flags = 0;
    void *d1 = poolalloc(&mainmem, 10);
    void *d2 = poolalloc(&mainmem, 20);
    clearprinted();
    pooldump(&mainmem);
    CHECK(nlines >= 3 && strstr(printed, "alloc") != NULL && strstr(printed, "free") != NULL);
    poolfree(&mainmem, d1);
    poolfree(&mainmem, d2);
    poolcheck(&mainmem);
}

/* ---- an optional free callback gives whole arenas back ---- */
static void arena_give_back(void)
{
    Pool gp = {
        .name = "giveback",
        .maxsize = 1 << 20,
        .minarena = 16 * 1024,
        .quantum = 16,
        .alloc = sbrkalloc,
        .free = arenafree,
        .panic = ppanic,
    };
    void *small = poolalloc(&gp, 100);
    void *big = poolalloc(&gp, 200 * 1024); /* its own arena, above the 128 KiB threshold */
    CHECK(small != NULL && big != NULL);
    size_t before = gp.cursize;
    poolfree(&gp, big);
    CHECK(nfreearena == 1 && gp.cursize < before);
    poolfree(&gp, small);
    counters_consistent(&gp);
}

int main(void)
{
    basics();
    msize_and_realloc();
    allocalign();
    compaction();
    flags();
    arena_give_back();
    counters_consistent(&mainmem);
    if (failures != 0) {
        fprintf(stderr, "pool.c: %d failures\n", failures);
        return 1;
    }
    return 0;
}
