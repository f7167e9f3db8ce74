/* Layouts shared by the loader, the engine and (through docs/protocol.md)
 * every engine that exchanges messages with psim. */
#ifndef PSTACK_RECORDS_H
#define PSTACK_RECORDS_H
#include <stdint.h>

/* One edge in the CSR of a (source device, output pin). */
typedef struct {
    uint32_t dst;        /* destination device index */
    uint32_t slot;       /* index into the edge properties/state of dst_pin, if it has any */
    uint16_t dst_pin;    /* input pin index within the destination's type */
    uint16_t flags;      /* PE_EDGE_REMOTE: the destination is in another region */
} pe_edge;

#define PE_EDGE_REMOTE 1u

/* A remote message record: this header, then `length` message bytes in the
 * graph-schema packed layout.  Little endian, no padding. */
typedef struct {
    uint32_t src;        /* source device index */
    uint32_t send_index; /* edge index for indexed pins, else PE_BROADCAST */
    uint16_t pin;        /* output pin index within the source's type */
    uint16_t length;     /* message bytes that follow */
} pe_record;

#define PE_BROADCAST 0xFFFFFFFFu
#define PE_RECORD_HEADER 12

#endif
