// The engine's side of a v4 supervisor (spec: supervisors-and-externals.md,
// section 3): its lifetime, its per-round tick, device-to-supervisor traffic
// and the replies and broadcasts it asks for.  Included by engine_loop.hpp;
// without a supervisor (PE_SUPERVISOR 0) every entry point is an empty inline
// function, so graphs without one pay nothing.
//
// Traffic goes through two calls, so a supervisor in another region can plug
// in later: pe_sup_send (a device's __SUP_OUT__ send, on the device's side)
// and pe_sup_handle (on the supervisor's side).  Standalone, the first calls
// the second at once, synchronously, as the reference does.
#pragma once

#if PE_SUPERVISOR

struct pe_sup_runtime {
    pe_supervisor sup;
    std::vector<uint32_t> listeners;       // devices with a __SUP_IN__, in index order: broadcast targets
    explicit pe_sup_runtime(const uint8_t* graph_props) : sup(graph_props) {}
};

static inline void pe_sup_enter(pe_engine* E, int handler) {
    E->cur_dev = PE_SUP_DEV;
    E->cur_pin = 0;
    E->cur_handler = handler;
}

// Make the supervisor (its Properties and State value-initialised) and run its OnInit.
static void pe_sup_start(pe_engine* E) {
    pe_sup_enter(E, PE_H_SUP_INIT);
    E->sup = new pe_sup_runtime(E->graph_props);
    for (uint32_t d = 0; d < E->n_devices; d++)
        if (pe_sup_in[pe_type(E, d)] != PE_NO_PIN && pe_local(E, d)) E->sup->listeners.push_back(d);
    E->sup->sup.on_init();
}

// OnSupervisorIdle: despite its name, a tick at the start of every round.
static void pe_sup_tick(pe_engine* E) {
    pe_sup_enter(E, PE_H_SUP_IDLE);
    E->sup->sup.on_idle();
}

static void pe_sup_deliver(pe_engine* E, uint32_t dst, const uint8_t* msg) {
    const pe_edge e = {dst, 0, pe_sup_in[pe_type(E, dst)], 0};
    pe_deliver(E, e, msg);
}

// The supervisor's OnReceive for a message from device `src`, then the reply
// (to src, if its type has a __SUP_IN__) and the broadcast it asked for.  The
// reference delivers the device's own message, not `reply`/`bcast`, and
// delivers even after an exit request in this very handler.
static void pe_sup_handle(pe_engine* E, uint32_t src, const uint8_t* msg) {
    pe_supervisor& s = E->sup->sup;
    s.pe_reply = s.pe_bcast = false;
    pe_sup_enter(E, PE_H_SUP_RECV);
    s.on_receive(msg);
    if (s.pe_reply && pe_sup_in[pe_type(E, src)] != PE_NO_PIN) pe_sup_deliver(E, src, msg);
    if (s.pe_bcast)
        for (uint32_t d : E->sup->listeners) pe_sup_deliver(E, d, msg);
}

// A device's __SUP_OUT__ send.  The message is read as the supervisor pin's
// type (sizes may differ: bytes pass through, zero-padded).  A region without
// the supervisor would instead put a record {src, pin, length, bytes} in the
// outbox of the supervisor's region, whose inbox would call pe_sup_handle.
static void pe_sup_send(pe_engine* E, uint32_t src, const uint8_t* msg, uint16_t size) {
    alignas(8) uint8_t buf[PE_MAXMSG] = {};
    memcpy(buf, msg, size);
    pe_sup_handle(E, src, buf);
}

// The run ended idle: the reference then calls the supervisor's stop entry,
// which runs the OnSupervisorIdle body (never <OnStop>); an exit requested
// there makes the run fail (status 1).
static void pe_sup_finish(pe_engine* E) {
    pe_sup_enter(E, PE_H_SUP_STOP);
    E->sup->sup.on_idle();
    if (E->stop == PE_STOP_EXIT) {
        char text[32];
        snprintf(text, sizeof text, "%d", E->exit_code);
        pe_record_failure(E, PE_FAIL_SUP_STOP, text, 0);
    }
}

static void pe_sup_destroy(pe_engine* E) { delete E->sup; }

#else

static inline void pe_sup_start(pe_engine*) {}
static inline void pe_sup_tick(pe_engine*) {}
static inline void pe_sup_send(pe_engine*, uint32_t, const uint8_t*, uint16_t) {}
static inline void pe_sup_finish(pe_engine*) {}
static inline void pe_sup_destroy(pe_engine*) {}

#endif
