// The debugger's side of the loop (docs/debugging.md): breakpoints,
// stepping, and messages injected by hand.  Nothing here runs unless the
// debugger has work here (PE_W_DEBUG in E->watch, pe_debug_arm): attached
// with no breakpoint, a run goes at full speed.  Its events are counted by
// the engine's own counters (pe_events).
//
// A stop is a call into the debugger (pe_stop_fn) before a handler runs:
// the engine waits inside it, in the middle of its event, while the
// debugger reads state or queues work; the event then runs as it was.
// Breakpoints are matched here on device, type, pin and handler kind;
// the debugger decides about conditions on state or message (its callback
// returns 0 to go on).  Injected messages and devices whose state the
// debugger changed are handled by the loop before its next event.
#include <deque>

enum pe_stop_reason { PE_STOP_BREAK = 1, PE_STOP_STEP = 2 };
static const uint32_t PE_ANY = 0xFFFFFFFFu;

typedef int (*pe_stop_fn)(void* ctx, int reason, int bp, uint32_t kind, uint32_t dev, uint32_t pin,
                          const uint8_t* msg, uint32_t size);

struct pe_bp { uint32_t dev, type, pin, kinds; };   // PE_ANY matches all; kinds: bit per pe_event_kind

struct pe_injected { uint32_t dev, slot; uint16_t pin, size; uint8_t msg[PE_MAXMSG]; };

struct pe_debug {
    pe_stop_fn fn = nullptr;
    void* ctx = nullptr;
    std::vector<pe_bp> bps;
    bool stepping = false;          // stop when step_left events have run
    uint64_t step_left = 0;
    std::deque<pe_injected> queue;
    std::vector<uint32_t> touched;  // devices whose ReadyToSend must be asked again
};

static bool pe_bp_matches(const pe_engine* E, const pe_bp& b, uint32_t kind, uint32_t dev, uint32_t pin) {
    return (b.kinds >> kind & 1) && (b.dev == PE_ANY || b.dev == dev) && (b.pin == PE_ANY || b.pin == pin)
        && (b.type == PE_ANY || (dev < E->n_devices && b.type == pe_type(E, dev)));
}

// Watch the events only while a breakpoint, a step or queued work needs it.
static void pe_debug_arm(pe_engine* E) {
    const pe_debug* d = E->debug;
    const bool armed = !d->bps.empty() || d->stepping || !d->queue.empty() || !d->touched.empty();
    E->watch = armed ? E->watch | PE_W_DEBUG : E->watch & ~PE_W_DEBUG;
}

static int pe_debug_call(pe_engine* E, int reason, int bp, uint32_t kind, uint32_t dev, uint32_t pin,
                         const uint8_t* msg, uint32_t size) {
    const uint32_t cur_dev = E->cur_dev;
    const int cur_pin = E->cur_pin, cur_handler = E->cur_handler;
    int stopped = E->debug->fn(E->debug->ctx, reason, bp, kind, dev, pin, msg, size);
    E->cur_dev = cur_dev; E->cur_pin = cur_pin; E->cur_handler = cur_handler;
    return stopped;
}

static void pe_debug_event(pe_engine* E, uint32_t kind, uint32_t dev, uint32_t pin, const uint8_t* msg, uint32_t size) {
    pe_debug* d = E->debug;
    if (kind == PE_EV_SENT) return;                  // a send stops before OnSend, not after
    for (size_t i = 0; i < d->bps.size(); i++)
        if (pe_bp_matches(E, d->bps[i], kind, dev, pin) && pe_debug_call(E, PE_STOP_BREAK, (int)i, kind, dev, pin, msg, size))
            return;
    if (!d->stepping) return;
    if (d->step_left) { d->step_left--; return; }
    d->stepping = false;
    pe_debug_arm(E);
    pe_debug_call(E, PE_STOP_STEP, -1, kind, dev, pin, msg, size);
}

// Work the debugger queued: asked before each of the loop's steps.
static bool pe_debug_work(pe_engine* E) {
    pe_debug* d = E->debug;
    for (uint32_t dev : d->touched) pe_update(E, dev, pe_type(E, dev));
    d->touched.clear();
    if (d->queue.empty()) { pe_debug_arm(E); return false; }
    pe_injected m = d->queue.front();
    d->queue.pop_front();
    pe_edge e = {m.dev, m.slot, m.pin, 0};
    pe_deliver(E, e, m.msg);
    pe_debug_arm(E);
    return true;
}

static void pe_debug_destroy(pe_engine* E) { delete E->debug; }
