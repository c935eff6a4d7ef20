/* iob_packets: a tiny network stack's life of packets over NuttX-style I/O buffers. A
 * receiver builds packets with headroom, queues them; a sender prepends a header into the
 * headroom, walks the chain as the driver would (io_flink, io_offset, io_len), and frees it.
 *
 * Build: cc -std=c11 -I ffi/include ffi/examples/iob_packets.c target/release/libmempools.a \
 *           -lpthread -ldl -lm -lrt */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iob.h"

#define NBUFFERS 32
#define BUFSIZE 196
#define THROTTLE 8
#define HEADROOM 16

struct header {
    uint16_t id;
    uint16_t len;
};

int main(void) {
    if (iob_initialize(NBUFFERS, BUFSIZE, THROTTLE) != 0) {
        fprintf(stderr, "iob_initialize failed\n");
        return EXIT_FAILURE;
    }
    struct iob_queue_s rx = {NULL, NULL};
    uint8_t payload[1000];
    for (size_t i = 0; i < sizeof payload; i++) {
        payload[i] = (uint8_t)i;
    }

    /* Receive: 5 packets of growing size, throttled (the receive path must not starve TX). */
    for (uint16_t id = 0; id < 5; id++) {
        struct iob_s *pkt = iob_tryalloc(true);
        if (pkt == NULL) {
            fprintf(stderr, "receive: no buffer\n");
            return EXIT_FAILURE;
        }
        iob_reserve(pkt, HEADROOM);
        unsigned len = 100u + 200u * id;
        int ret = iob_trycopyin(pkt, payload, len, 0, true);
        if (ret != (int)len) {
            fprintf(stderr, "receive: copyin returned %d\n", ret);
            return EXIT_FAILURE;
        }
        iob_add_queue(pkt, &rx);
        printf("rx packet %u: %u bytes; free buffers %d (throttled users see %d)\n", id,
               pkt->io_pktlen, iob_navail(false), iob_navail(true));
    }

    /* Send: prepend a header in the headroom, hand the chain to the "driver". */
    struct iob_s *pkt;
    uint16_t id = 0;
    while ((pkt = iob_remove_queue(&rx)) != NULL) {
        struct header h = {id++, (uint16_t)pkt->io_pktlen};
        iob_reserve(pkt, HEADROOM - sizeof h);
        memcpy(pkt->io_data + pkt->io_offset, &h, sizeof h);
        unsigned frags = 0;
        unsigned bytes = 0;
        for (const struct iob_s *b = pkt; b != NULL; b = b->io_flink) {
            frags++;
            bytes += b->io_len; /* a driver would DMA io_data + io_offset, io_len bytes */
        }
        struct header back;
        iob_copyout((uint8_t *)&back, pkt, sizeof back, 0);
        printf("tx packet %u: %u bytes in %u buffers (pktlen %u)\n", back.id, bytes, frags, pkt->io_pktlen);
        iob_free_chain(pkt);
    }
    printf("all buffers back: %d of %d\n", iob_navail(false), NBUFFERS);
    return iob_navail(false) == NBUFFERS ? 0 : EXIT_FAILURE;
}
