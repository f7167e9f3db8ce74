// The event trace (docs/debugging.md): every event the loop reports, as
// packed records appended here and taken by Python in batches, like the
// log.  Nothing here runs unless a trace is being recorded (PE_W_TRACE).
//
// A record: u8 kind, u8 0, u16 pin, u32 device, u16 size, then size
// message bytes (RECV: the message delivered; SENT: the message sent, or
// size 0xFFFF when OnSend cancelled it).
struct pe_trace {
    std::vector<uint8_t> buf;
};

static const size_t PE_TRACE_HEAD = 10;

static void pe_trace_event(pe_engine* E, uint32_t kind, uint32_t dev, uint32_t pin, const uint8_t* msg, uint32_t size) {
    std::vector<uint8_t>& b = E->trace->buf;
    E->in_critical = 1;
    const size_t at = b.size(), body = size == 0xFFFF ? 0 : size;
    b.resize(at + PE_TRACE_HEAD + body);
    uint8_t* p = &b[at];
    const uint16_t pin16 = (uint16_t)pin, size16 = (uint16_t)size;
    p[0] = (uint8_t)kind; p[1] = 0;
    memcpy(p + 2, &pin16, 2);
    memcpy(p + 4, &dev, 4);
    memcpy(p + 8, &size16, 2);
    if (body) memcpy(p + PE_TRACE_HEAD, msg, body);
    pe_leave_critical();
}

static void pe_trace_destroy(pe_engine* E) { delete E->trace; }
