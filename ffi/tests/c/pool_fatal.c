/* pool.h bad input that must reach the pool's panic callback: each case runs in a fork()ed
 * child whose panic callback records the message on stderr and exits with EXIT_FAILURE; the
 * parent checks the status and the message. Without a panic callback (or when it returns) the
 * library aborts: SIGABRT. */
#include "pool.h"

#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures, cases;

static _Alignas(16) unsigned char brkmem[1 << 20];
static size_t brkused;
static void *sbrkalloc(unsigned long n)
{
    if (n > sizeof brkmem - brkused) {
        return NULL;
    }
    void *p = brkmem + brkused;
    brkused += (n + 15) & ~(size_t)15;
    return p;
}
static int sbrkmerge(void *lo, void *hi) { return (uintptr_t)lo < (uintptr_t)hi; }

static void recordpanic(Pool *p, char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "panic %s: ", p->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(EXIT_FAILURE);
}
static void returningpanic(Pool *p, char *fmt, ...) { (void)p; (void)fmt; }
static void quietprint(Pool *p, char *fmt, ...) { (void)p; (void)fmt; }

static Pool pool = {
    .name = "victim",
    .maxsize = 1 << 20,
    .minarena = 64 * 1024,
    .quantum = 16,
    .alloc = sbrkalloc,
    .merge = sbrkmerge,
    .print = quietprint,
    .panic = recordpanic,
};

enum outcome { PANICS, ABORTS };

static void expect(const char *what, void (*body)(void), enum outcome outcome, const char *needle)
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
        _exit(77); /* returned: the bad input went unnoticed */
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
    int ok = outcome == PANICS ? WIFEXITED(status) && WEXITSTATUS(status) == EXIT_FAILURE &&
                                     strstr(log, "panic victim: ") != NULL
                               : WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    ok = ok && strstr(log, needle) != NULL;
    if (!ok) {
        failures++;
        fprintf(stderr, "FAIL %s: status %#x; log:\n%s\n", what, status, log);
    }
}

static void double_free(void)
{
    void *v = poolalloc(&pool, 40);
    poolfree(&pool, v);
    poolfree(&pool, v);
}
static void foreign_heap_pointer(void)
{
    void *m = malloc(64);
    (void)poolalloc(&pool, 40);
    poolfree(&pool, m);
}
static void interior_pointer(void)
{
    char *v = poolalloc(&pool, 100);
    poolfree(&pool, v + 32);
}
static void overrun_at_free(void)
{
    char *v = poolalloc(&pool, 10);
    v[10] = 'x';
    poolfree(&pool, v);
}
static void overrun_at_blockcheck(void)
{
    char *v = poolalloc(&pool, 33);
    v[33] = 1;
    poolblockcheck(&pool, v);
}
static void overrun_at_check(void)
{
    char *v = poolalloc(&pool, 7);
    v[7] = 'y';
    poolcheck(&pool);
}
static void overrun_at_realloc(void)
{
    char *v = poolalloc(&pool, 20);
    v[20] = 'z';
    (void)poolrealloc(&pool, v, 4000);
}
static void nul_without_tolerance(void)
{
    char *v = poolalloc(&pool, 5);
    memcpy(v, "hello", 6);
    poolfree(&pool, v);
}
static void overrun_after_msize(void)
{
    char *v = poolalloc(&pool, 5);
    unsigned long m = poolmsize(&pool, v);
    v[m] = 1;
    poolblockcheck(&pool, v);
}
static void paranoia_catches_at_next_entry(void)
{
    pool.flags = POOL_PARANOIA;
    char *v = poolalloc(&pool, 12);
    v[12] = 'p';
    (void)poolalloc(&pool, 1); /* a different block: the overrun is found on entry */
}
static void noreuse_double_free(void)
{
    pool.flags = POOL_NOREUSE;
    void *v = poolalloc(&pool, 40);
    poolfree(&pool, v);
    poolfree(&pool, v);
}
static void realloc_of_freed(void)
{
    void *v = poolalloc(&pool, 40);
    poolfree(&pool, v);
    (void)poolrealloc(&pool, v, 80);
}
static void msize_of_foreign(void)
{
    static long notours[8];
    (void)poolalloc(&pool, 1);
    (void)poolmsize(&pool, &notours[2]);
}
static void copied_pool(void)
{
    void *v = poolalloc(&pool, 40);
    Pool copy = pool;
    poolfree(&copy, v);
}
static void panic_null_aborts(void)
{
    pool.panic = NULL;
    void *v = poolalloc(&pool, 40);
    poolfree(&pool, v);
    poolfree(&pool, v);
}
static void panic_returns_aborts(void)
{
    pool.panic = returningpanic;
    void *v = poolalloc(&pool, 40);
    poolfree(&pool, v);
    poolfree(&pool, v);
}

int main(void)
{
    expect("double free", double_free, PANICS, "free");
    expect("foreign pointer (libc malloc)", foreign_heap_pointer, PANICS, "not from this pool");
    expect("interior pointer", interior_pointer, PANICS, "free");
    expect("one byte past the end at poolfree", overrun_at_free, PANICS, "past the end");
    expect("one byte past the end at poolblockcheck", overrun_at_blockcheck, PANICS, "past the end");
    expect("one byte past the end at poolcheck", overrun_at_check, PANICS, "past the end");
    expect("one byte past the end at poolrealloc", overrun_at_realloc, PANICS, "past the end");
    expect("NUL past the end without TOLERANCE", nul_without_tolerance, PANICS, "past the end");
    expect("past the end of what poolmsize returned", overrun_after_msize, PANICS, "past the end");
    expect("PARANOIA catches an overrun at the next entry", paranoia_catches_at_next_entry, PANICS,
           "past the end");
    expect("double free under NOREUSE", noreuse_double_free, PANICS, "already freed");
    expect("realloc of a freed block", realloc_of_freed, PANICS, "realloc");
    expect("msize of a pointer outside the pool", msize_of_foreign, PANICS, "not from this pool");
    expect("Pool copied after first use", copied_pool, PANICS, "moved or copied");
    expect("NULL panic callback: log and abort", panic_null_aborts, ABORTS, "double free");
    expect("returning panic callback: abort", panic_returns_aborts, ABORTS, "panic callback returned");
    if (failures != 0) {
        fprintf(stderr, "pool_fatal.c: %d of %d cases failed\n", failures, cases);
        return 1;
    }
    return 0;
}
