/* A Plan 9 style malloc on pool.h, as /sys/src/libc/port/malloc.c builds it: a `mainmem` Pool
 * fed by an sbrk over a static arena, a pthread mutex for lock/unlock, print and panic to
 * stderr. Build:
 *   cc -std=c11 -I ffi/include pool_plan9.c libmempools.a -lpthread -ldl -lm -lrt */
#include "pool.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Alignas(16) unsigned char heap[1 << 20];
static size_t brk;

static void *sbrkalloc(unsigned long n)
{
    if (n > sizeof heap - brk) {
        return NULL;
    }
    void *p = heap + brk;
    brk += (n + 15) & ~(size_t)15;
    return p;
}

static int sbrkmerge(void *x, void *y)
{
    (void)x;
    (void)y;
    return 1; /* sbrk memory is contiguous */
}

static pthread_mutex_t mainlock = PTHREAD_MUTEX_INITIALIZER;
static void plock(Pool *p)
{
    (void)p;
    pthread_mutex_lock(&mainlock);
}
static void punlock(Pool *p)
{
    (void)p;
    pthread_mutex_unlock(&mainlock);
}

static void pprint(Pool *p, char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", p->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void ppanic(Pool *p, char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "panic: %s: ", p->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static Pool sbrkmem = {
    .name = "sbrkmem",
    .maxsize = sizeof heap,
    .minarena = 4 * 1024,
    .quantum = 32,
    .minblock = 32,
    .alloc = sbrkalloc,
    .merge = sbrkmerge,
    .flags = 0,
    .lock = plock,
    .unlock = punlock,
    .print = pprint,
    .panic = ppanic,
};
Pool *mainmem = &sbrkmem;

static void *p9malloc(unsigned long n) { return poolalloc(mainmem, n); }
static void p9free(void *v) { poolfree(mainmem, v); }
static void *p9realloc(void *v, unsigned long n) { return poolrealloc(mainmem, v, n); }
static char *p9strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = p9malloc(n);
    if (d != NULL) {
        memcpy(d, s, n);
    }
    return d;
}

int main(void)
{
    char *words[100];
    for (int i = 0; i < 100; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "word %d", i);
        words[i] = p9strdup(buf);
    }
    char *text = NULL;
    size_t len = 0;
    for (int i = 0; i < 100; i++) {
        size_t w = strlen(words[i]);
        char *t = p9realloc(text, len + w + 2);
        if (t == NULL) {
            return 1;
        }
        text = t;
        memcpy(text + len, words[i], w);
        text[len + w] = ' ';
        text[len + w + 1] = '\0';
        len += w + 1;
        p9free(words[i]);
    }
    poolcheck(mainmem);
    printf("%zu bytes of text; pool %s: cursize %lu curalloc %lu curfree %lu nfree %d\n", len,
           mainmem->name, (unsigned long)mainmem->cursize, (unsigned long)mainmem->curalloc,
           (unsigned long)mainmem->curfree, mainmem->nfree);
    int ok = strncmp(text, "word 0 word 1 ", 14) == 0 && mainmem->curalloc + mainmem->curfree <= mainmem->cursize;
    p9free(text);
    return ok ? 0 : 1;
}
