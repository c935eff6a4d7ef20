/* iob.h: I/O buffers used the way NuttX network code uses them, the bad input with its
 * documented outcome, and two threads (producer/consumer, blocking iob_alloc) on one pool. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iob.h"

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);    \
            exit(2);                                                                    \
        }                                                                               \
    } while (0)

#define NBUFFERS 8
#define BUFSIZE 64
#define THROTTLE 2

static uint8_t data[2048];

static unsigned buffers(const struct iob_s *iob) {
    unsigned n = 0;
    for (; iob != NULL; iob = iob->io_flink) {
        CHECK(iob->io_offset + iob->io_len <= BUFSIZE);
        n++;
    }
    return n;
}

static unsigned sum_len(const struct iob_s *iob) {
    unsigned n = 0;
    for (; iob != NULL; iob = iob->io_flink) {
        n += iob->io_len;
    }
    return n;
}

/* The chain holds data[from .. from + iob->io_pktlen). */
static void check_contents(const struct iob_s *iob, unsigned from) {
    static uint8_t out[2048];
    CHECK(sum_len(iob) == iob->io_pktlen);
    CHECK(iob_copyout(out, iob, sizeof out, 0) == (int)iob->io_pktlen);
    CHECK(memcmp(out, data + from, iob->io_pktlen) == 0);
}

static void chains(void) {
    struct iob_s *iob = iob_alloc(false);
    CHECK(iob != NULL);
    CHECK(iob->io_flink == NULL && iob->io_len == 0 && iob->io_offset == 0 && iob->io_pktlen == 0);
    CHECK(iob_navail(false) == NBUFFERS - 1 && iob_navail(true) == NBUFFERS - 1 - THROTTLE);

    /* copyin fills the last buffer before adding buffers. */
    CHECK(iob_copyin(iob, data, 300, 0, false) == 300);
    CHECK(iob->io_pktlen == 300 && buffers(iob) == 5 && iob->io_len == BUFSIZE);
    CHECK(iob_navail(false) == NBUFFERS - 5);
    CHECK(memcmp(iob->io_data + iob->io_offset, data, BUFSIZE) == 0); /* the C view of the bytes */
    check_contents(iob, 0);

    /* copyout at offsets; past the end is -ESPIPE. */
    uint8_t out[64];
    CHECK(iob_copyout(out, iob, 50, 100) == 50 && memcmp(out, data + 100, 50) == 0);
    CHECK(iob_copyout(out, iob, 50, 280) == 20 && memcmp(out, data + 280, 20) == 0);
    CHECK(iob_copyout(out, iob, 50, 300) == 0);
    CHECK(iob_copyout(out, iob, 50, 301) == -ESPIPE);

    /* copyin overwrites in place; an offset past the end is -ESPIPE, nothing copied. */
    CHECK(iob_copyin(iob, data + 10, 20, 10, false) == 20);
    CHECK(iob_copyin(iob, data, 10, 301, false) == -ESPIPE);
    CHECK(iob_trycopyin(iob, data, 10, 301, false) == -ESPIPE);
    CHECK(iob->io_pktlen == 300 && buffers(iob) == 5);
    check_contents(iob, 0);

    /* trimhead advances the offset, never moves data, frees emptied buffers. */
    struct iob_s *head = iob_trimhead(iob, 10);
    CHECK(head == iob && iob->io_offset == 10 && iob->io_len == 54 && iob->io_pktlen == 290);
    check_contents(iob, 10);
    iob = iob_trimhead(iob, 60); /* empties the first buffer */
    CHECK(iob != head && iob->io_pktlen == 230 && buffers(iob) == 4 && iob->io_offset == 6);
    CHECK(iob_navail(false) == NBUFFERS - 4);
    check_contents(iob, 70);

    /* trimtail shortens the tail. */
    iob = iob_trimtail(iob, 100);
    CHECK(iob != NULL && iob->io_pktlen == 130 && buffers(iob) == 3);
    check_contents(iob, 70);

    /* pack: offset 0, every buffer but the last full. */
    iob = iob_pack(iob);
    CHECK(iob->io_offset == 0 && iob->io_len == BUFSIZE && iob->io_pktlen == 130 && buffers(iob) == 3);
    CHECK(iob->io_flink->io_len == BUFSIZE && iob->io_flink->io_flink->io_len == 2);
    check_contents(iob, 70);

    /* reserve: headroom before the data, as protocol stacks do. */
    struct iob_s *hdr = iob_alloc(false);
    iob_reserve(hdr, 16);
    CHECK(hdr->io_offset == 16 && hdr->io_len == 0 && hdr->io_pktlen == 0);
    CHECK(iob_copyin(hdr, data + 200, 10, 0, false) == 10);
    CHECK(hdr->io_offset == 16 && hdr->io_len == 10 && hdr->io_pktlen == 10);
    iob_reserve(hdr, 12); /* exposes 4 bytes of headroom */
    CHECK(hdr->io_offset == 12 && hdr->io_len == 14 && hdr->io_pktlen == 14);
    memcpy(hdr->io_data + hdr->io_offset, data + 196, 4);
    check_contents(hdr, 196);
    iob_reserve(hdr, 20); /* drops 8 bytes */
    CHECK(hdr->io_offset == 20 && hdr->io_len == 6 && hdr->io_pktlen == 6);
    iob_reserve(hdr, BUFSIZE + 1); /* refused, logged */
    CHECK(hdr->io_offset == 20 && hdr->io_len == 6);
    iob_reserve(hdr, 16);
    check_contents(hdr, 200);

    /* concat: pktlen is the sum. */
    iob_concat(hdr, iob);
    CHECK(hdr->io_pktlen == 140 && buffers(hdr) == 4);

    /* iob_free hands the next buffer pktlen - len. */
    struct iob_s *next = iob_free(hdr);
    CHECK(next == iob && next->io_pktlen == 130);
    check_contents(next, 70);

    /* update_pktlen: shorter trims, longer grows. */
    iob_update_pktlen(iob, 50);
    CHECK(iob->io_pktlen == 50 && sum_len(iob) == 50 && buffers(iob) == 1);
    iob_update_pktlen(iob, 100);
    CHECK(iob->io_pktlen == 100 && sum_len(iob) == 100 && buffers(iob) == 2);
    iob_update_pktlen(iob, 0);
    CHECK(iob->io_pktlen == 0 && buffers(iob) == 1);
    CHECK(iob_navail(false) == NBUFFERS - 1);

    /* Trimming everything: trimhead keeps one empty buffer, trimtail frees them all. */
    CHECK(iob_copyin(iob, data, 200, 0, false) == 200);
    iob = iob_trimhead(iob, 1000);
    CHECK(iob != NULL && iob->io_pktlen == 0 && iob->io_len == 0 && buffers(iob) == 1);
    CHECK(iob_copyin(iob, data, 200, 0, false) == 200);
    CHECK(iob_trimtail(iob, 200) == NULL);
    CHECK(iob_navail(false) == NBUFFERS);
}

static void out_of_buffers(void) {
    /* iob_copyin past the end of the pool: -ENOMEM, the copied bytes kept and counted. */
    struct iob_s *held = iob_alloc(false);
    struct iob_s *iob = iob_alloc(false);
    CHECK(iob_copyin(iob, data, 10, 0, false) == 10);
    CHECK(iob_copyin(iob, data + 10, 2000, 10, false) == -ENOMEM);
    unsigned kept = (NBUFFERS - 1) * BUFSIZE;
    CHECK(iob->io_pktlen == kept && sum_len(iob) == kept && buffers(iob) == NBUFFERS - 1);
    CHECK(iob_navail(false) == 0);
    check_contents(iob, 0);

    /* No buffer left: allocations fail, trycopyin fills the tail and stops. */
    CHECK(iob_tryalloc(false) == NULL);
    CHECK(iob_timedalloc(false, 10) == NULL);
    iob = iob_trimtail(iob, 20);
    CHECK(iob_trycopyin(iob, data + kept - 20, 100, kept - 20, false) == -ENOMEM);
    CHECK(iob->io_pktlen == kept);
    check_contents(iob, 0);
    iob_update_pktlen(iob, kept + 1); /* needs a buffer: refused, nothing changes */
    CHECK(iob->io_pktlen == kept);

    /* Throttled users get nothing while at most THROTTLE buffers are free. */
    iob = iob_trimtail(iob, 4 * BUFSIZE); /* 4 buffers back */
    CHECK(iob_navail(false) == 4 && iob_navail(true) == 2);
    struct iob_s *t1 = iob_tryalloc(true);
    struct iob_s *t2 = iob_timedalloc(true, 10);
    CHECK(t1 != NULL && t2 != NULL);
    CHECK(iob_navail(true) == 0 && iob_tryalloc(true) == NULL && iob_timedalloc(true, 5) == NULL);
    CHECK(iob_trycopyin(t1, data, 200, 0, true) == -ENOMEM && t1->io_pktlen == BUFSIZE);
    struct iob_s *u = iob_tryalloc(false);
    CHECK(u != NULL);
    iob_free_chain(u);
    iob_free_chain(t1);
    iob_free_chain(t2);
    iob_free_chain(iob);
    iob_free_chain(held);
    CHECK(iob_navail(false) == NBUFFERS);
}

static void queues(void) {
    struct iob_queue_s q = {NULL, NULL};
    CHECK(iob_peek_queue(&q) == NULL && iob_remove_queue(&q) == NULL);
    struct iob_s *a = iob_alloc(false);
    struct iob_s *b = iob_alloc(false);
    CHECK(iob_copyin(b, data, 100, 0, false) == 100);
    CHECK(iob_add_queue(a, &q) == 0 && iob_add_queue(b, &q) == 0);
    CHECK(iob_peek_queue(&q) == a && iob_remove_queue(&q) == a && iob_peek_queue(&q) == b);
    CHECK(iob_add_queue(a, &q) == 0);
    CHECK(iob_remove_queue(&q) == b && iob_remove_queue(&q) == a && iob_remove_queue(&q) == NULL);
    CHECK(q.qh_head == NULL && q.qh_tail == NULL);
    CHECK(iob_add_queue(a, &q) == 0 && iob_add_queue(b, &q) == 0);
    CHECK(iob_navail(false) == NBUFFERS - 3);
    iob_free_queue(&q);
    CHECK(q.qh_head == NULL && q.qh_tail == NULL && iob_navail(false) == NBUFFERS);
    CHECK(iob_add_queue(NULL, &q) == -EINVAL);
    CHECK(iob_remove_queue(NULL) == NULL && iob_peek_queue(NULL) == NULL);
    iob_free_queue(NULL);
}

static void bad_input(void) {
    /* NULL chains: logged, failure values, nothing changes. */
    CHECK(iob_free(NULL) == NULL);
    iob_free_chain(NULL);
    CHECK(iob_copyin(NULL, data, 10, 0, false) == -EINVAL);
    CHECK(iob_trycopyin(NULL, data, 10, 0, false) == -EINVAL);
    CHECK(iob_copyout(data, NULL, 10, 0) == -EINVAL);
    CHECK(iob_trimhead(NULL, 1) == NULL && iob_trimtail(NULL, 1) == NULL && iob_pack(NULL) == NULL);
    iob_update_pktlen(NULL, 10);
    iob_reserve(NULL, 10);
    struct iob_s *iob = iob_alloc(false);
    iob_concat(iob, NULL);
    iob_concat(NULL, iob);
    CHECK(iob_copyin(iob, NULL, 10, 0, false) == -EINVAL);
    CHECK(iob_copyout(NULL, iob, 10, 0) == -EINVAL);
    CHECK(iob_copyin(iob, NULL, 0, 0, false) == 0);
    CHECK(iob->io_pktlen == 0);

    /* A foreign buffer (not from the pool) is refused, also linked behind a real one. */
    static uint64_t fake_storage[(sizeof(struct iob_s) + BUFSIZE) / 8];
    struct iob_s *fake = (struct iob_s *)fake_storage;
    CHECK(iob_copyin(fake, data, 10, 0, false) == -EINVAL && fake->io_len == 0);
    iob_free_chain(fake);
    CHECK(iob_free(fake) == NULL);
    iob->io_flink = fake;
    iob_free_chain(iob); /* refused: nothing freed */
    CHECK(iob_navail(false) == NBUFFERS - 1);
    iob->io_flink = NULL;
    iob_free_chain(iob);
    CHECK(iob_navail(false) == NBUFFERS);
}

/* Two threads on one pool: the producer allocates with blocking iob_alloc and copyin, the
 * consumer checks and frees. Every buffer comes back. */
#define PACKETS 3000
static struct iob_queue_s shared = {NULL, NULL};
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready = PTHREAD_COND_INITIALIZER;

static void *producer(void *arg) {
    (void)arg;
    for (unsigned i = 0; i < PACKETS; i++) {
        struct iob_s *iob = iob_alloc(false);
        unsigned len = 1 + i % (2 * BUFSIZE); /* one or two buffers */
        uint8_t tag = (uint8_t)i;
        CHECK(iob_copyin(iob, &tag, 1, 0, false) == 1);
        CHECK(iob_copyin(iob, data, len - 1, 1, false) == (int)len - 1);
        pthread_mutex_lock(&lock);
        CHECK(iob_add_queue(iob, &shared) == 0);
        pthread_cond_signal(&ready);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    static uint8_t out[2 * BUFSIZE];
    for (unsigned i = 0; i < PACKETS; i++) {
        pthread_mutex_lock(&lock);
        struct iob_s *iob;
        while ((iob = iob_remove_queue(&shared)) == NULL) {
            pthread_cond_wait(&ready, &lock);
        }
        pthread_mutex_unlock(&lock);
        unsigned len = 1 + i % (2 * BUFSIZE);
        CHECK(iob->io_pktlen == len);
        CHECK(iob_copyout(out, iob, sizeof out, 0) == (int)len);
        CHECK(out[0] == (uint8_t)i && memcmp(out + 1, data, len - 1) == 0);
        iob_free_chain(iob);
    }
    return NULL;
}

static void threads(void) {
    pthread_t p, c;
    CHECK(pthread_create(&c, NULL, consumer, NULL) == 0);
    CHECK(pthread_create(&p, NULL, producer, NULL) == 0);
    CHECK(pthread_join(p, NULL) == 0 && pthread_join(c, NULL) == 0);
    CHECK(shared.qh_head == NULL);
    CHECK(iob_navail(false) == NBUFFERS);
}

int main(void) {
    for (size_t i = 0; i < sizeof data; i++) {
        data[i] = (uint8_t)(i * 7 + 3);
    }
    /* Before iob_initialize: failure values. */
    CHECK(iob_tryalloc(false) == NULL && iob_navail(false) == 0);
    CHECK(iob_initialize(0, BUFSIZE, 0) == -EINVAL);
    CHECK(iob_initialize(4, 0, 0) == -EINVAL);
    CHECK(iob_initialize(4, 70000, 0) == -EINVAL);
    CHECK(iob_initialize(4, BUFSIZE, 4) == -EINVAL);
    CHECK(iob_initialize(NBUFFERS, BUFSIZE, THROTTLE) == 0);
    CHECK(iob_initialize(NBUFFERS, BUFSIZE, THROTTLE) == -EALREADY);
    CHECK(iob_navail(false) == NBUFFERS && iob_navail(true) == NBUFFERS - THROTTLE);

    chains();
    out_of_buffers();
    queues();
    bad_input();
    threads();
    return 0;
}
