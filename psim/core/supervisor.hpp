// The engine's side of a v4 supervisor (spec: supervisors-and-externals.md,
// section 3): its lifetime, its per-round tick, device-to-supervisor traffic
// and the replies and broadcasts it asks for.  Included by engine_loop.hpp;
// without a supervisor (PE_SUPERVISOR 0) every entry point is an empty inline
// function, so graphs without one pay nothing.
//
// The supervisor lives in one region (E->sup_region; the whole run when it is
// not split).  A device's __SUP_OUT__ send reaches it through pe_sup_send:
// at once, synchronously, as the reference does, when the supervisor is
// here; otherwise as a record {device, PE_BROADCAST, __SUP_OUT__ pin} in the
// outbox of the supervisor's region, whose inbox calls pe_sup_handle.
// Replies and broadcasts to devices elsewhere travel back as records from
// PE_SUP_DEV (docs/protocol.md, "Supervisors"): send_index is the device a
// reply is for, or PE_BROADCAST for every listener of the receiving region.
#pragma once

#if PE_SUPERVISOR

struct pe_sup_runtime {
    pe_supervisor* sup = nullptr;          // only in the supervisor's region
    std::vector<uint32_t> listeners;       // local devices with a __SUP_IN__, in index order: broadcast targets
    std::vector<uint16_t> far_listeners;   // other regions holding one (the supervisor's region only)
    ~pe_sup_runtime() { delete sup; }
};

static inline bool pe_sup_here(const pe_engine* E) { return E->sup && E->sup->sup; }

static inline void pe_sup_enter(pe_engine* E, int handler) {
    E->cur_dev = PE_SUP_DEV;
    E->cur_pin = 0;
    E->cur_handler = handler;
}

// Find the broadcast targets; in the supervisor's region, make the
// supervisor (Properties and State value-initialised) and run its OnInit.
static void pe_sup_start(pe_engine* E) {
    E->sup = new pe_sup_runtime();
    std::vector<bool> far(E->n_regions);
    for (uint32_t d = 0; d < E->n_devices; d++) {
        if (pe_sup_in[pe_type(E, d)] == PE_NO_PIN) continue;
        if (pe_local(E, d)) E->sup->listeners.push_back(d);
        else far[E->region[d]] = true;
    }
    if (pe_split(E) && E->my_region != E->sup_region) return;
    for (uint16_t q = 0; q < E->n_regions; q++)
        if (far[q]) E->sup->far_listeners.push_back(q);
    pe_sup_enter(E, PE_H_SUP_INIT);
    E->sup->sup = new pe_supervisor(E->graph_props);
    E->sup->sup->on_init();
}

// OnSupervisorIdle: despite its name, a tick at the start of every round.
static void pe_sup_tick(pe_engine* E) {
    if (!pe_sup_here(E)) return;
    pe_sup_enter(E, PE_H_SUP_IDLE);
    E->sup->sup->on_idle();
}

static void pe_sup_deliver(pe_engine* E, uint32_t dst, const uint8_t* msg) {
    const pe_edge e = {dst, 0, pe_sup_in[pe_type(E, dst)], 0};
    pe_deliver(E, e, msg);
}

static void pe_sup_broadcast_here(pe_engine* E, const uint8_t* msg) {
    for (uint32_t d : E->sup->listeners) pe_sup_deliver(E, d, msg);
}

// The supervisor's OnReceive for a message of `size` bytes from device `src`
// (`msg` zero-padded to PE_MAXMSG), then the reply (to src, if its type has
// a __SUP_IN__) and the broadcast it asked for.  The reference delivers the
// device's own message, not `reply`/`bcast`, and delivers even after an exit
// request in this very handler.  Records carry the device's `size` bytes;
// the receiver pads them with zeros again, so every receiver reads the
// same bytes wherever it is.
static void pe_sup_handle(pe_engine* E, uint32_t src, const uint8_t* msg, uint16_t size) {
    pe_supervisor& s = *E->sup->sup;
    s.pe_reply = s.pe_bcast = false;
    pe_sup_enter(E, PE_H_SUP_RECV);
    s.on_receive(msg);
    if (s.pe_reply && pe_sup_in[pe_type(E, src)] != PE_NO_PIN) {
        if (pe_local(E, src)) pe_sup_deliver(E, src, msg);
        else pe_outbox_add(E, E->region[src], PE_SUP_DEV, 0, src, msg, size);
    }
    if (s.pe_bcast) {
        for (uint16_t q : E->sup->far_listeners) pe_outbox_add(E, q, PE_SUP_DEV, 0, PE_BROADCAST, msg, size);
        pe_sup_broadcast_here(E, msg);
    }
}

// A device's __SUP_OUT__ send.  The message is read as the supervisor pin's
// type (sizes may differ: bytes pass through, zero-padded).
static void pe_sup_send(pe_engine* E, uint32_t src, uint32_t pin, const uint8_t* msg, uint16_t size) {
    if (!pe_sup_here(E)) {
        pe_outbox_add(E, E->sup_region, src, pin, PE_BROADCAST, msg, size);
        return;
    }
    alignas(8) uint8_t buf[PE_MAXMSG] = {};
    memcpy(buf, msg, size);
    pe_sup_handle(E, src, buf, size);
}

// A record from the supervisor's region (checked by pe_check_sup_record):
// a reply to one device here, or a broadcast to every listener here.
static void pe_sup_receive(pe_engine* E, uint32_t send_index, const uint8_t* msg) {
    if (send_index == PE_BROADCAST) pe_sup_broadcast_here(E, msg);
    else pe_sup_deliver(E, send_index, msg);
}

// The run ended idle: the reference then calls the supervisor's stop entry,
// which runs the OnSupervisorIdle body (never <OnStop>); an exit requested
// there makes the run fail (status 1).  Split, the supervisor's region has
// not ticked for the last idle round yet (it ticks at each hardware-idle
// round, and the run ends instead of the eleventh): that tick first, as an
// ordinary tick, so a split run ticks as often as a whole one.
static void pe_sup_finish(pe_engine* E) {
    if (!pe_sup_here(E)) return;
    if (pe_split(E)) {
        pe_sup_tick(E);
        if (E->stop) return;
    }
    pe_sup_enter(E, PE_H_SUP_STOP);
    E->sup->sup->on_idle();
    if (E->stop == PE_STOP_EXIT) {
        char text[32];
        snprintf(text, sizeof text, "%d", E->exit_code);
        pe_record_failure(E, PE_FAIL_SUP_STOP, text, 0);
    }
}

// Split, the supervisor's region ticks at each hardware-idle round (it does
// not tick while it merely waits for other regions).
static void pe_sup_idle_round(pe_engine* E) {
    if (pe_split(E)) pe_sup_tick(E);
}

static void pe_sup_destroy(pe_engine* E) { delete E->sup; }

#else

static inline void pe_sup_start(pe_engine*) {}
static inline void pe_sup_tick(pe_engine*) {}
static inline bool pe_sup_here(const pe_engine*) { return false; }
static inline void pe_sup_send(pe_engine*, uint32_t, uint32_t, const uint8_t*, uint16_t) {}
static inline void pe_sup_handle(pe_engine*, uint32_t, const uint8_t*, uint16_t) {}
static inline void pe_sup_receive(pe_engine*, uint32_t, const uint8_t*) {}
static inline void pe_sup_finish(pe_engine*) {}
static inline void pe_sup_idle_round(pe_engine*) {}
static inline void pe_sup_destroy(pe_engine*) {}

#endif
