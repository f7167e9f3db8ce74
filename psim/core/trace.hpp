// The event trace (docs/tracing.md): every event the loop reports, and every
// input the engine is given, as packed records appended here and taken by
// Python in batches, like the log.  Nothing here runs unless a trace is
// being recorded (PE_W_TRACE).  Little endian, no padding.
//
// An event (kinds 1..6, pe_event_kind): u8 kind, u8 source pin, u16 pin,
// u32 device, u16 size, then for RECV a u32 source device, then the
// message: size bytes (RECV: the message delivered; SENT: the message
// sent, or none with size 0xFFFF when OnSend cancelled it).  The source of
// a delivery is the device and output pin of its edge; PE_TR_NO_EDGE (and
// source pin 0xFF) for one that came over no edge: from the supervisor, or
// injected by a debugger.
//
// An input (kinds 16..19, pe_trace_input_kind): u8 kind, u8 status, u16 0,
// u32 length, u64 steps (the engine's step count when it came), then
// length bytes (PE_TR_INJECT: the remote records, as pe_inject took them).
// PE_TR_RETURN: pe_run returned idle or stopped (its status): its last pass
// ran no step but may have changed the state (a supervisor's tick).
// With the seed and order, the inputs at their steps fix a region's whole
// schedule: psim/trace.py replays it from them.
#include <algorithm>

struct pe_trace {
    std::vector<uint8_t> buf;       // grown by doubling, never shrunk: records fill buf[0, used)
    size_t used = 0;
    uint32_t slot = 0;              // the CSR slot of the last delivery's edge (a fan-out's are all in one)
};

// Room for n more bytes (vector::resize per record would zero-fill and check each time).
static inline uint8_t* pe_trace_room(pe_trace* t, size_t n) {
    if (t->used + n > t->buf.size()) t->buf.resize(std::max(2 * t->buf.size(), t->used + n + (1 << 16)));
    uint8_t* p = t->buf.data() + t->used;
    t->used += n;
    return p;
}

enum pe_trace_input_kind { PE_TR_INJECT = 16, PE_TR_HWIDLE = 17, PE_TR_FINISH = 18, PE_TR_RETURN = 19 };
static const size_t PE_TRACE_HEAD = 10, PE_TRACE_INPUT_HEAD = 16;
static const uint32_t PE_TR_NO_EDGE = 0xFFFFFFFFu;

// The (source device, output pin) of edge `e`, if it is one of the
// instance's edges: the CSR slot whose range holds its index.
static void pe_trace_source(pe_engine* E, const pe_edge* e, uint32_t* src, uint8_t* pin) {
    const uint32_t slots = E->n_devices * PE_MAXOUT, n_edges = E->out_off[slots];
    *src = PE_TR_NO_EDGE; *pin = 0xFF;
    if (!e || e < E->edges || e >= E->edges + n_edges) return;
    const uint32_t index = (uint32_t)(e - E->edges);
    uint32_t k = E->trace->slot;
    if (!(E->out_off[k] <= index && index < E->out_off[k + 1]))
        k = E->trace->slot = (uint32_t)(std::upper_bound(E->out_off, E->out_off + slots + 1, index) - E->out_off) - 1;
    *src = k / PE_MAXOUT;
    *pin = (uint8_t)(k % PE_MAXOUT);
}

static void pe_trace_event(pe_engine* E, uint32_t kind, uint32_t dev, uint32_t pin, const uint8_t* msg, uint32_t size,
                           const pe_edge* edge) {
    E->in_critical = 1;
    const size_t body = size == 0xFFFF ? 0 : size, extra = kind == PE_EV_RECV ? 4 : 0;
    uint8_t* p = pe_trace_room(E->trace, PE_TRACE_HEAD + extra + body);
    const uint16_t pin16 = (uint16_t)pin, size16 = (uint16_t)size;
    uint32_t src = 0;
    uint8_t src_pin = 0;
    if (kind == PE_EV_RECV) pe_trace_source(E, edge, &src, &src_pin);
    p[0] = (uint8_t)kind; p[1] = src_pin;
    memcpy(p + 2, &pin16, 2);
    memcpy(p + 4, &dev, 4);
    memcpy(p + 8, &size16, 2);
    if (extra) memcpy(p + PE_TRACE_HEAD, &src, 4);
    if (body) memcpy(p + PE_TRACE_HEAD + extra, msg, body);
    pe_leave_critical();
}

// An input (called by the C interface functions, outside any handler).
static void pe_trace_input(pe_engine* E, uint32_t kind, const uint8_t* data, uint32_t length, int status = 0) {
    if (!(E->watch & PE_W_TRACE)) return;
    uint8_t* p = pe_trace_room(E->trace, PE_TRACE_INPUT_HEAD + length);
    memset(p, 0, 4);
    p[0] = (uint8_t)kind;
    p[1] = (uint8_t)status;
    memcpy(p + 4, &length, 4);
    memcpy(p + 8, &E->steps, 8);
    if (length) memcpy(p + PE_TRACE_INPUT_HEAD, data, length);
}

static void pe_trace_destroy(pe_engine* E) { delete E->trace; }
