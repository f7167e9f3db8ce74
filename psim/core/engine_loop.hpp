// The event loop: execution semantics of graph-schema (spec, "Execution
// semantics").  Included at the end of every generated graph module, after
// the generated pe_dispatch_* functions and tables it is written against.
//
// Default order: deterministic.  Sends and deliveries are immediate (a
// message is delivered as soon as it is sent, a legal zero-delay schedule);
// devices ready to send take turns in a FIFO, one send each; devices
// requesting OnDeviceIdle are served when nobody is ready to send.
// Random order: messages go to a pool, and every step picks one pending
// event uniformly: a message in the pool (delivered), a device ready to send
// (one send), or a device waiting for OnDeviceIdle.  Weighing by counts is
// what keeps it fair: a pool that grows makes deliveries likelier, so sends
// cannot outrun them, and every schedule that ends under fairness ends here.
//
// Graphs with a supervisor (PE_SUPERVISOR, a compile-time constant: graphs
// without one compile to the plain loop) run in rounds, psim's stand-in for
// the reference's epochs.  A round begins with the supervisor's
// OnSupervisorIdle tick and takes as many steps as events were pending at its
// start: in fixed order one turn for each device queued then (a device made
// ready during the round sends in the next one, as in an epoch), in random
// order that many uniform picks.  A round with nothing pending is an idle
// round (the caller runs hardware idle between them).  An exit request lets
// the current round finish; the run ends before the next one.
#include <atomic>
#include <csignal>
#include <ctime>
#include <mutex>
#include <pthread.h>
#include <new>

enum pe_status { PE_IDLE = 0, PE_BUDGET = 1, PE_STOPPED = 2, PE_OUTBOX = 3 };

static const size_t PE_OUTBOX_FLUSH = 1 << 20;   // bytes per region before run() returns
static const size_t PE_POOL_ENTRY = 4 + PE_MAXMSG;   // random order's pool: edge index, message

static inline uint32_t pe_rand(pe_engine* E, uint32_t n) {   // xorshift64*, n > 0
    E->rng ^= E->rng >> 12; E->rng ^= E->rng << 25; E->rng ^= E->rng >> 27;
    return (uint32_t)(((E->rng * 2685821657736338717ull) >> 32) * n >> 32);
}

static inline bool pe_local(const pe_engine* E, uint32_t dev) {
    return !E->region || E->region[dev] == E->my_region;
}

// Is the run split across regions (a one-region run behaves as a whole one)?
static inline bool pe_split(const pe_engine* E) { return E->region && E->n_regions > 1; }

// ---- ready and idle sets -------------------------------------------------

static inline void pe_set_add(std::vector<uint32_t>& set, std::vector<uint32_t>& pos, uint32_t dev) {
    pos[dev] = (uint32_t)set.size();
    set.push_back(dev);
}

static inline uint32_t pe_set_take(std::vector<uint32_t>& set, std::vector<uint32_t>& pos, uint32_t i) {
    uint32_t dev = set[i];
    set[i] = set.back();
    pos[set[i]] = i;
    set.pop_back();
    return dev;
}

static inline void pe_mark_ready(pe_engine* E, uint32_t dev) {
    E->qflags[dev] |= PE_Q_READY;
    if (E->random_order) pe_set_add(E->rset, E->rpos, dev);
    else E->ready[E->ready_tail++ & E->ready_mask] = dev;
}

static inline void pe_mark_idle(pe_engine* E, uint32_t dev) {
    E->qflags[dev] |= PE_Q_IDLE;
    if (E->random_order) pe_set_add(E->iset, E->ipos, dev);
    else E->idleq[E->idle_tail++ & E->ready_mask] = dev;
}

static inline uint32_t pe_type(const pe_engine* E, uint32_t dev) { return PE_NTYPES == 1 ? 0 : E->dev_type[dev]; }
static inline uint32_t pe_slot(const pe_engine* E, uint32_t dev) { return PE_NTYPES == 1 ? dev : E->dev_slot[dev]; }

// Must the run stop now?  A failure always stops it; an exit request too,
// except with a supervisor, where the round finishes first (see the top).
static inline bool pe_halted(const pe_engine* E) {
    return PE_SUPERVISOR ? E->stop == PE_STOP_FAIL : E->stop != PE_RUNNING;
}

// ---- watchers: a debugger or a trace (debug.hpp, trace.hpp) ----------------------

static void pe_watched(pe_engine* E, uint32_t kind, uint32_t dev, uint32_t pin, const uint8_t* msg, uint32_t size,
                       const pe_edge* edge);

#ifdef PE_NO_WATCHERS               // the module of a run nobody debugs or traces (psim/compiler.py)
static const bool pe_watchers = false;
#else
static const bool pe_watchers = true;
#endif

static inline bool pe_watching(const pe_engine* E) { return pe_watchers && __builtin_expect(E->watch != 0, 0); }

// Report an event to the watchers: one predictable branch when there are none.
// `edge`: a delivery's edge (the trace names its source).
static inline void pe_watch(pe_engine* E, uint32_t kind, uint32_t dev, uint32_t pin,
                            const uint8_t* msg = nullptr, uint32_t size = 0, const pe_edge* edge = nullptr) {
    if (pe_watching(E)) pe_watched(E, kind, dev, pin, msg, size, edge);
}

// Re-evaluate ReadyToSend of a device after one of its handlers ran.
static inline void pe_update(pe_engine* E, uint32_t dev, uint32_t t) {
    if (pe_is_external[t]) return;
    E->cur_handler = PE_H_RTS;
    uint32_t r = pe_dispatch_rts(E, t, pe_slot(E, dev)) & (pe_out_mask[t] | PE_RTC_BIT);
    E->cur_handler = PE_H_NONE;
    E->rts[dev] = r;
    uint8_t q = E->qflags[dev];
    if (r & ~PE_RTC_BIT) {
        if (!(q & PE_Q_READY)) pe_mark_ready(E, dev);
    } else if (r && !(q & PE_Q_IDLE)) {
        pe_mark_idle(E, dev);
    }
}

// ---- delivery --------------------------------------------------------------

// W: watchers attached.  A fan-out asks once for all its deliveries, so the
// deliveries of a run nobody watches carry no check at all.
template <bool W>
static inline void pe_deliver_as(pe_engine* E, const pe_edge& e, const uint8_t* msg) {
    uint32_t dst = e.dst, t = pe_type(E, dst);
    if (W) pe_watched(E, PE_EV_RECV, dst, e.dst_pin, msg, pe_in_size[t][e.dst_pin], &e);
    E->cur_dev = dst;
    E->cur_pin = e.dst_pin;
    E->cur_handler = PE_H_RECV;
    pe_dispatch_recv(E, t, pe_slot(E, dst), e.dst_pin, msg, e.slot);
    E->delivered++;
    pe_update(E, dst, t);
}

// One delivery on its own (from the pool, the supervisor, the debugger).
static inline void pe_deliver(pe_engine* E, const pe_edge& e, const uint8_t* msg) {
    if (pe_watching(E)) pe_deliver_as<true>(E, e, msg);
    else pe_deliver_as<false>(E, e, msg);
}

// Random order: park a delivery in the pool instead of running it.
static void pe_pool_add(pe_engine* E, uint32_t edge_index, const uint8_t* msg, uint16_t size) {
    size_t at = E->pool.size();
    E->pool.resize(at + PE_POOL_ENTRY);
    memcpy(&E->pool[at], &edge_index, 4);
    memcpy(&E->pool[at + 4], msg, size);
    E->inflight[E->edges[edge_index].dst]++;
}

template <bool W>
static inline void pe_route(pe_engine* E, uint32_t ei, const uint8_t* msg, uint16_t size) {
    if (E->random_order) pe_pool_add(E, ei, msg, size);
    else pe_deliver_as<W>(E, E->edges[ei], msg);
}

static void pe_outbox_add(pe_engine* E, uint16_t region, uint32_t src, uint32_t pin,
                          uint32_t send_index, const uint8_t* msg, uint16_t size) {
    E->in_critical = 1;
    std::vector<uint8_t>& box = E->outbox[region];
    pe_record h = {src, send_index, (uint16_t)pin, size};
    box.insert(box.end(), (const uint8_t*)&h, (const uint8_t*)&h + PE_RECORD_HEADER);
    box.insert(box.end(), msg, msg + size);
    E->remote_sent++;
    E->remote_bytes += PE_RECORD_HEADER + size;
    pe_leave_critical();
}

// An indexed send (or a record of one) must name one of the pin's edges:
// checked before any record leaves for another region or any delivery.
static void pe_check_send_index(pe_engine* E, uint32_t src, uint32_t pin, uint32_t send_index) {
    const uint32_t k = src * PE_MAXOUT + pin;
    const uint32_t n = E->out_off[k + 1] - E->out_off[k];
    if (send_index < n) return;
    E->cur_dev = src; E->cur_pin = pin; E->cur_handler = PE_H_SEND;
    char text[96];
    snprintf(text, sizeof text, "sendIndex %u is out of range: the pin has %u edges", send_index, n);
    pe_fail(PE_FAIL_SEND_INDEX, text, 0);
}

// Deliver a message sent by `src` on `pin` to the local destinations of that
// pin (all edges, or edge `send_index` of an indexed pin).  Remote edges are
// skipped: the sender's region already sent them a record.
template <bool W>
static void pe_fan_out(pe_engine* E, uint32_t src, uint32_t pin, uint32_t send_index,
                          const uint8_t* msg, uint16_t size) {
    const uint32_t k = src * PE_MAXOUT + pin;
    const uint32_t lo = E->out_off[k], hi = E->out_off[k + 1];
    if (send_index != PE_BROADCAST) {
        pe_check_send_index(E, src, pin, send_index);       // a record's index, too, came from a handler
        if (!(E->edges[lo + send_index].flags & PE_EDGE_REMOTE)) pe_route<W>(E, lo + send_index, msg, size);
        return;
    }
    for (uint32_t i = lo; i < hi; i++) {
        if (E->edges[i].flags & PE_EDGE_REMOTE) continue;
        pe_route<W>(E, i, msg, size);
        if (pe_halted(E)) return;   // handler_exit or a failure: the run ends after this handler
    }
}


static void pe_send_remote(pe_engine* E, uint32_t src, uint32_t pin, uint32_t send_index,
                           const uint8_t* msg, uint16_t size) {
    const uint32_t k = src * PE_MAXOUT + pin;
    if (send_index != PE_BROADCAST) {
        const pe_edge& e = E->edges[E->out_off[k] + send_index];
        if (e.flags & PE_EDGE_REMOTE) pe_outbox_add(E, E->region[e.dst], src, pin, send_index, msg, size);
        return;
    }
    for (uint32_t i = E->rem_off[k]; i < E->rem_off[k + 1]; i++)
        pe_outbox_add(E, E->rem_reg[i], src, pin, send_index, msg, size);
}

#include "supervisor.hpp"
#include "debug.hpp"
#include "trace.hpp"

// cold: kept out of the way of the loop a run nobody watches uses
__attribute__((cold, noinline))
static void pe_watched(pe_engine* E, uint32_t kind, uint32_t dev, uint32_t pin, const uint8_t* msg, uint32_t size,
                       const pe_edge* edge) {
    if (E->watch & PE_W_TRACE) pe_trace_event(E, kind, dev, pin, msg, size, edge);
    if (E->watch & PE_W_DEBUG) pe_debug_event(E, kind, dev, pin, msg, size);
}

// One send: OnSend on the device's chosen pin, then its deliveries (or the
// supervisor's handling, for the __SUP_OUT__ pin).
template <bool W>
static void pe_send(pe_engine* E, uint32_t dev, uint32_t t, uint32_t pin) {
    alignas(8) uint8_t msg[PE_MAXMSG];
    uint32_t send_index = PE_BROADCAST;
    uint16_t size;
    if (W) pe_watched(E, PE_EV_SEND, dev, pin, nullptr, 0, nullptr);
    E->cur_dev = dev;
    E->cur_pin = pin;
    E->cur_handler = PE_H_SEND;
    bool do_send = pe_dispatch_send(E, t, pe_slot(E, dev), pin, msg, &send_index, &size);
    E->sends++;
    if (W) pe_watched(E, PE_EV_SENT, dev, pin, msg, do_send ? size : 0xFFFF, nullptr);
    pe_update(E, dev, t);
    if (!do_send) { E->cancelled++; return; }
    if (PE_SUPERVISOR && pin == pe_sup_out[t]) { pe_sup_send(E, dev, pin, msg, size); return; }
    if (!pe_indexed[t][pin]) send_index = PE_BROADCAST;
    else if (send_index == PE_BROADCAST) {
        E->cur_handler = PE_H_SEND;
        pe_fail(PE_FAIL_SEND_INDEX, "OnSend of an indexed pin did not set *sendIndex", 0);
    }
    if (send_index != PE_BROADCAST) pe_check_send_index(E, dev, pin, send_index);
    if (E->rem_off) pe_send_remote(E, dev, pin, send_index, msg, size);
    pe_fan_out<W>(E, dev, pin, send_index, msg, size);
}

static inline uint32_t pe_lowest_pin(uint32_t bits) { return (uint32_t)__builtin_ctz(bits); }

static uint32_t pe_random_pin(pe_engine* E, uint32_t bits) {
    uint32_t n = pe_rand(E, (uint32_t)__builtin_popcount(bits));
    while (n--) bits &= bits - 1;
    return (uint32_t)__builtin_ctz(bits);
}

template <bool W>
static void pe_device_idle(pe_engine* E, uint32_t dev) {
    uint32_t t = pe_type(E, dev);
    if (W) pe_watched(E, PE_EV_DEVIDLE, dev, 0, nullptr, 0, nullptr);
    E->cur_dev = dev;
    E->cur_handler = PE_H_DEVIDLE;
    pe_dispatch_devidle(E, t, pe_slot(E, dev));
    E->devidle_calls++;
    pe_update(E, dev, t);
}

// ---- incoming remote records -------------------------------------------------

// Records were checked by pe_inject: each header fits and names a real pin.
template <bool W>
static void pe_inbox_next(pe_engine* E) {
    pe_record h;
    memcpy(&h, &E->inbox[E->inbox_pos], PE_RECORD_HEADER);
    alignas(8) uint8_t msg[PE_MAXMSG];
    memcpy(msg, &E->inbox[E->inbox_pos + PE_RECORD_HEADER], h.length);
    E->inbox_pos += PE_RECORD_HEADER + h.length;
    if (E->inbox_pos == E->inbox.size()) { E->inbox.clear(); E->inbox_pos = 0; }
    E->remote_received++;
    E->inbox_records--;
    if (PE_SUPERVISOR) {                 // supervisor traffic reads its bytes zero-padded (supervisor.hpp)
        memset(msg + h.length, 0, PE_MAXMSG - h.length);
        if (h.src == PE_SUP_DEV) { pe_sup_receive(E, h.send_index, msg); return; }
        if (h.pin == pe_sup_out[pe_type(E, h.src)]) { pe_sup_handle(E, h.src, msg, h.length); return; }
    }
    pe_fan_out<W>(E, h.src, h.pin, h.send_index, msg, h.length);
}

// A record from the supervisor (source PE_SUP_DEV): a reply to a device here
// that has a __SUP_IN__, or a broadcast (send_index PE_BROADCAST).
static const char* pe_check_sup_record(const pe_engine* E, const pe_record& h) {
    if (!PE_SUPERVISOR) return "source device index out of range";
    if (h.pin != 0) return "a record from the supervisor must have pin 0";
    if (h.length > PE_MAXMSG) return "a record from the supervisor is longer than any message type";
    if (h.send_index == PE_BROADCAST) return nullptr;
    if (h.send_index >= E->n_devices || !pe_local(E, h.send_index))
        return "a reply from the supervisor to a device not in this region";
    if (pe_sup_in[pe_type(E, h.send_index)] == PE_NO_PIN)
        return "a reply from the supervisor to a device without a supervisor input pin";
    return nullptr;
}

static const char* pe_check_record(const pe_engine* E, const uint8_t* p, size_t avail, size_t* used) {
    pe_record h;
    if (avail < PE_RECORD_HEADER) return "truncated record header";
    memcpy(&h, p, PE_RECORD_HEADER);
    if (avail < PE_RECORD_HEADER + (size_t)h.length) return "truncated record body";
    *used = PE_RECORD_HEADER + h.length;
    if (h.src == PE_SUP_DEV) return pe_check_sup_record(E, h);
    if (h.src >= E->n_devices) return "source device index out of range";
    uint32_t t = pe_type(E, h.src);
    if (h.pin >= PE_MAXOUT || !((pe_out_mask[t] >> h.pin) & 1)) return "no such output pin";
    if (h.length != pe_msg_size[t][h.pin]) return "message length does not match the pin's message type";
    if (h.send_index != PE_BROADCAST && !pe_indexed[t][h.pin]) return "send index on a broadcast pin";
    if (PE_SUPERVISOR && h.pin == pe_sup_out[t] && !pe_sup_here(E))
        return "a message for the supervisor, sent to a region without it";
    return nullptr;
}

// ---- the loop ------------------------------------------------------------------

static bool pe_outbox_full(const pe_engine* E) {
    for (const auto& box : E->outbox)
        if (box.size() >= PE_OUTBOX_FLUSH) return true;
    return false;
}

template <bool W>
static int pe_step_fifo(pe_engine* E) {
    if (E->inbox_pos < E->inbox.size()) { pe_inbox_next<W>(E); return 1; }
    if (E->ready_head != E->ready_tail) {
        uint32_t dev = E->ready[E->ready_head++ & E->ready_mask];
        E->qflags[dev] &= ~PE_Q_READY;
        uint32_t out = E->rts[dev] & ~PE_RTC_BIT;
        if (out) pe_send<W>(E, dev, pe_type(E, dev), pe_lowest_pin(out));
        else if (E->rts[dev] && !(E->qflags[dev] & PE_Q_IDLE)) pe_mark_idle(E, dev);
        return 1;
    }
    if (E->idle_head != E->idle_tail) {
        uint32_t dev = E->idleq[E->idle_head++ & E->ready_mask];
        E->qflags[dev] &= ~PE_Q_IDLE;
        if (E->rts[dev] == PE_RTC_BIT) pe_device_idle<W>(E, dev);
        return 1;
    }
    return 0;
}

template <bool W>
static void pe_pool_deliver(pe_engine* E, uint32_t i) {
    const size_t entry = PE_POOL_ENTRY, n = E->pool.size() / entry;
    const size_t at = (size_t)i * entry, last = (n - 1) * entry;
    alignas(8) uint8_t msg[PE_POOL_ENTRY];
    memcpy(msg, &E->pool[at], entry);
    memmove(&E->pool[at], &E->pool[last], entry);
    E->pool.resize(last);
    uint32_t ei;
    memcpy(&ei, msg, 4);
    E->inflight[E->edges[ei].dst]--;
    pe_deliver_as<W>(E, E->edges[ei], msg + 4);
}

template <bool W>
static int pe_step_random(pe_engine* E) {
    if (E->inbox_pos < E->inbox.size()) { pe_inbox_next<W>(E); return 1; }   // into the pool
    const uint64_t pool = E->pool.size() / PE_POOL_ENTRY, ready = E->rset.size(), idle = E->iset.size();
    const uint64_t events = pool + ready + idle;
    if (!events) return 0;
    uint32_t pick = pe_rand(E, (uint32_t)std::min<uint64_t>(events, UINT32_MAX));
    if (pick < pool) { pe_pool_deliver<W>(E, pick); return 1; }
    pick -= (uint32_t)pool;
    if (pick < ready) {
        uint32_t dev = pe_set_take(E->rset, E->rpos, pick);
        E->qflags[dev] &= ~PE_Q_READY;
        uint32_t out = E->rts[dev] & ~PE_RTC_BIT;
        if (out) pe_send<W>(E, dev, pe_type(E, dev), pe_random_pin(E, out));
        else if (E->rts[dev] && !(E->qflags[dev] & PE_Q_IDLE)) pe_mark_idle(E, dev);
        return 1;
    }
    uint32_t i = std::min<uint32_t>(pick - (uint32_t)ready, (uint32_t)idle - 1);
    uint32_t dev = E->iset[i];
    if (E->inflight[dev]) return 1;      // messages are on their way to it: not idle yet
    pe_set_take(E->iset, E->ipos, i);
    E->qflags[dev] &= ~PE_Q_IDLE;
    if (E->rts[dev] == PE_RTC_BIT) pe_device_idle<W>(E, dev);
    return 1;
}

// Supervisor graphs: begin a round (see the top); returns its length in steps, 0 if idle.
// Split, a region with nothing to do is only waiting for the others: no
// round begins, and the supervisor ticks at the hardware-idle rounds instead.
template <bool RANDOM>
static uint64_t pe_round_begin(pe_engine* E) {
    const uint64_t pending = E->inbox_records +
        (RANDOM ? E->pool.size() / PE_POOL_ENTRY + E->rset.size() + E->iset.size()
                : (uint64_t)(E->ready_tail - E->ready_head) + (E->idle_tail - E->idle_head));
    if (pending || !pe_split(E)) pe_sup_tick(E);
    return pending;
}

// W: watchers attached (chosen once per pe_run, so a run nobody watches has no check for them)
template <bool RANDOM, bool W>
static int pe_loop(pe_engine* E, uint64_t budget) {
    while (budget--) {
        if (pe_halted(E)) return PE_STOPPED;
        if (PE_SUPERVISOR && !E->round_left) {
            if (E->stop) return PE_STOPPED;         // exit requested in the round that just ended
            E->round_left = pe_round_begin<RANDOM>(E);
            if (!E->round_left) return E->stop ? PE_STOPPED : PE_IDLE;
        }
        if (W && (E->watch & PE_W_DEBUG) && pe_debug_work(E)) continue;
        if (E->timed_out) pe_fail(PE_FAIL_TIMEOUT, "", 0);
        if (E->steps >= E->max_steps) pe_fail(PE_FAIL_STEPS, "", 0);
        if (!(RANDOM ? pe_step_random<W>(E) : pe_step_fifo<W>(E))) return PE_IDLE;
        E->steps++;
        if (PE_SUPERVISOR) E->round_left--;
        if (E->rem_off && (E->steps & 1023) == 0 && pe_outbox_full(E)) return PE_OUTBOX;
    }
    return pe_halted(E) || (PE_SUPERVISOR && E->stop && !E->round_left) ? PE_STOPPED : PE_BUDGET;
}

// ---- crashes and time limits ---------------------------------------------------
// A handler that crashes or runs past the deadline jumps back to pe_run,
// which reports a failed run naming the device and handler.  Timers and
// signal handlers are installed only while pe_run runs.

// SIGXFSZ: a handler's write past the file-size limit (thread-directed, so it
// lands on the engine's thread; Python ignores it, which would hide it)
static const int pe_fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGXFSZ};
static const int PE_NSIG = sizeof pe_fatal_signals / sizeof pe_fatal_signals[0];

static const int PE_ALRM = PE_NSIG, PE_INT = PE_NSIG + 1;     // their places in pe_old_actions
static struct sigaction pe_old_actions[PE_NSIG + 2];   // what was there before the first guard (below)

// ---- Ctrl-C ----------------------------------------------------------------------
// SIGINT goes, once, to the handler that was there (Python's: KeyboardInterrupt
// once the call into C returns, within its slice), and to every other thread
// in an engine.  A thread that is in a handler then arms its grace timer: a
// handler that returns lets the call end as usual, with every state whole; one
// still running when the timer fires (it never returns) is left there, and
// the run fails PE_FAIL_INTERRUPT.  pe_interrupt() does the same for a Ctrl-C
// Python heard in one thread (psim --threads: the others' engines).
static const double PE_INTERRUPT_GRACE = 0.5;          // seconds
static const int PE_MAX_THREADS = 1024;
static std::atomic<pthread_t> pe_threads[PE_MAX_THREADS];   // the threads inside a guard now
static std::atomic<int> pe_interrupting;

struct pe_grace_timer {                // per thread; made outside signal handlers, set inside them
    timer_t id;
    bool made = false;
    volatile sig_atomic_t armed = 0;
    void make() {
        if (made) return;
        struct sigevent ev = {};
        ev.sigev_notify = SIGEV_THREAD_ID;
        ev.sigev_signo = SIGALRM;
        ev._sigev_un._tid = gettid();
        made = timer_create(CLOCK_MONOTONIC, &ev, &id) == 0;
    }
    void set(double seconds) {         // timer_settime is async-signal-safe; 0 disarms
        if (!made) return;
        struct itimerspec its = {};
        its.it_value.tv_sec = (time_t)seconds;
        its.it_value.tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9);
        timer_settime(id, 0, &its, nullptr);
        armed = seconds > 0;
    }
    ~pe_grace_timer() { if (made) timer_delete(id); }
};
static thread_local pe_grace_timer pe_grace;

static void pe_tell_threads() {
    const pthread_t me = pthread_self();
    for (auto& t : pe_threads) {
        const pthread_t other = t.load();
        if (other && !pthread_equal(other, me)) pthread_kill(other, SIGINT);
    }
}

static void pe_on_interrupt(pe_engine* E) {
    const struct sigaction& was = pe_old_actions[PE_INT];
    if (was.sa_handler == SIG_IGN) return;
    if (was.sa_handler == SIG_DFL) {   // nobody catches it: die of it, as without psim
        sigaction(SIGINT, &was, nullptr);
        raise(SIGINT);
        return;
    }
    if (!pe_interrupting.exchange(1)) {
        if (was.sa_flags & SA_SIGINFO) was.sa_sigaction(SIGINT, nullptr, nullptr);
        else was.sa_handler(SIGINT);
        pe_tell_threads();
    }
    if (E && E->cur_handler != PE_H_NONE && !pe_grace.armed) pe_grace.set(PE_INTERRUPT_GRACE);
}

// The grace timer fired: true if the handler running now is left (the caller jumps).
static bool pe_grace_over(pe_engine* E) {
    if (!pe_grace.armed || !pe_interrupting) return false;
    pe_grace.armed = 0;
    if (E->cur_handler == PE_H_NONE) return false;     // it returned: the call ends within its slice
    E->fail_signal = SIGINT;
    if (E->in_critical) { E->signal_pending = 1; return false; }
    return true;
}

static void pe_on_signal(int sig) {
    pe_engine* E = pe_cur;
    if (sig == SIGINT) return pe_on_interrupt(E);
    if (sig == SIGALRM && E && pe_grace_over(E)) siglongjmp(pe_jmp, 1);
    if (sig == SIGALRM && E && E->fail_signal == SIGINT) return;   // left at the end of its critical section
    if (!E) {       // a thread outside any engine, while another thread's engine runs: not ours
        for (int i = 0; i < PE_NSIG; i++)
            if (pe_fatal_signals[i] == sig) sigaction(sig, &pe_old_actions[i], nullptr);
        return;     // the fault happens again and meets the handler that was there (Python's faulthandler)
    }
    if (sig == SIGALRM) {
        E->timed_out = 1;
        if (E->in_critical) { E->fail_signal = sig; E->signal_pending = 1; return; }
        if (E->cur_handler == PE_H_NONE) return;       // the loop sees timed_out
    }
    E->fail_signal = sig;
    siglongjmp(pe_jmp, 1);
}

// Signal actions are process-wide, but engines may run in several threads at
// once (psim --threads): the first guard in installs pe_on_signal, the last
// one out puts back what was there.  The alternate stack and the timer are
// per thread.
static std::mutex pe_actions_lock;
static int pe_actions_users;

static void pe_actions_enter() {
    std::lock_guard<std::mutex> hold(pe_actions_lock);
    for (auto& t : pe_threads) {
        pthread_t none = 0;
        if (t.compare_exchange_strong(none, pthread_self())) break;
    }
    if (pe_actions_users++) return;
    pe_interrupting = 0;                 // no engine ran since the last Ctrl-C: it has been dealt with
    struct sigaction sa = {};
    sa.sa_handler = pe_on_signal;
    sa.sa_flags = SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < PE_NSIG; i++) sigaction(pe_fatal_signals[i], &sa, &pe_old_actions[i]);
    sigaction(SIGALRM, &sa, &pe_old_actions[PE_ALRM]);
    sigaction(SIGINT, &sa, &pe_old_actions[PE_INT]);
}

static void pe_actions_leave() {
    std::lock_guard<std::mutex> hold(pe_actions_lock);
    for (auto& t : pe_threads) {
        pthread_t mine = pthread_self();
        if (t.compare_exchange_strong(mine, 0)) break;
    }
    if (--pe_actions_users) return;
    for (int i = 0; i < PE_NSIG; i++) sigaction(pe_fatal_signals[i], &pe_old_actions[i], nullptr);
    sigaction(SIGALRM, &pe_old_actions[PE_ALRM], nullptr);
    sigaction(SIGINT, &pe_old_actions[PE_INT], nullptr);
}

struct pe_guard {   // signal handlers, alternate stack and timer for one pe_run
    stack_t old_stack;
    timer_t timer;
    bool has_timer = false;
    static thread_local char altstack[1 << 16];

    pe_guard(pe_engine* E, double seconds) {
        stack_t st = {};
        st.ss_sp = altstack;
        st.ss_size = sizeof altstack;
        sigaltstack(&st, &old_stack);
        pe_cur = E;
        pe_grace.make();
        pe_actions_enter();
        if (seconds > 0) arm(seconds);
    }
    void arm(double seconds) {
        struct sigevent ev = {};
        ev.sigev_notify = SIGEV_THREAD_ID;
        ev.sigev_signo = SIGALRM;
        ev._sigev_un._tid = gettid();
        if (timer_create(CLOCK_MONOTONIC, &ev, &timer) != 0) return;
        has_timer = true;
        struct itimerspec its = {};
        its.it_value.tv_sec = (time_t)seconds;
        its.it_value.tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9);
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
        timer_settime(timer, 0, &its, nullptr);
    }
    ~pe_guard() {
        if (has_timer) timer_delete(timer);
        if (pe_grace.armed) pe_grace.set(0);
        pe_actions_leave();
        pe_cur = nullptr;
        sigaltstack(&old_stack, nullptr);
    }
};
thread_local char pe_guard::altstack[1 << 16];

static void pe_record_signal(pe_engine* E) {
    int sig = E->fail_signal;
    int kind = sig == SIGALRM ? PE_FAIL_TIMEOUT : sig == SIGXFSZ ? PE_FAIL_FILE_SIZE
             : sig == SIGINT ? PE_FAIL_INTERRUPT : PE_FAIL_SIGNAL;
    pe_record_failure(E, kind, sig == SIGALRM || sig == SIGINT ? "" : strsignal(sig), 0);
}

// Run `body` with crash protection; returns PE_STOPPED if it failed.
template <class F>
static int pe_protected(pe_engine* E, double seconds, F body) {
    pe_log_level = E->log_level;
    if (pe_halted(E)) return PE_STOPPED;
    pe_guard guard(E, seconds);
    if (sigsetjmp(pe_jmp, 1)) {
        pe_record_signal(E);
        return PE_STOPPED;
    }
    try {
        return body();
    } catch (pe_failure&) {
        return PE_STOPPED;
    } catch (std::bad_alloc&) {      // a handler's new, or the engine's own buffers
        pe_record_failure(E, PE_FAIL_MEMORY, "", 0);
        return PE_STOPPED;
    }
}

// ---- the C interface (api.h) ---------------------------------------------------

extern "C" {
#include "api.h"
}

extern "C" void pe_interrupt(void) {
    pe_interrupting = 1;
    pe_tell_threads();
}

extern "C" pe_engine* pe_create(const pe_init* in) {
    pe_engine* E = new pe_engine();
    const uint32_t n = in->n_devices;
    E->n_devices = n;
    E->dev_type = in->dev_type;
    E->out_off = in->out_off;
    E->edges = (const pe_edge*)in->edges;
    E->rem_off = in->rem_off;
    E->rem_reg = in->rem_reg;
    E->region = in->region;
    E->my_region = in->my_region;
    E->n_regions = in->n_regions;
    E->outbox.resize(in->n_regions);
    E->graph_props = in->graph_props;
    E->props = in->props;
    E->state = in->state;
    E->eprops = in->eprops;
    E->estate = in->estate;
    E->halt_dev = in->halt_dev;
    E->sup_region = in->sup_region;
    E->random_order = in->random_order;
    E->rng = in->seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    E->max_steps = in->max_steps ? in->max_steps : UINT64_MAX;
    E->log_level = in->log_level;
    E->dev_slot = nullptr;
    if (PE_NTYPES > 1) {
        E->dev_slot = new uint32_t[n];
        uint32_t count[PE_NTYPES] = {};
        for (uint32_t d = 0; d < n; d++) E->dev_slot[d] = count[E->dev_type[d]]++;
    }
    E->rts = new uint32_t[n]();
    E->qflags = new uint8_t[n]();
    uint32_t cap = 1;
    while (cap < n + 1) cap <<= 1;
    E->ready_mask = cap - 1;
    E->ready = new uint32_t[cap];
    E->idleq = new uint32_t[cap];
    if (E->random_order) {
        E->rpos.resize(n);
        E->ipos.resize(n);
        E->inflight.resize(n);
    }
    return E;
}

extern "C" void pe_destroy(pe_engine* E) {
    pe_sup_destroy(E);
    pe_debug_destroy(E);
    pe_trace_destroy(E);
    delete[] E->dev_slot;
    delete[] E->rts;
    delete[] E->qflags;
    delete[] E->ready;
    delete[] E->idleq;
    delete E;
}

// The supervisor's OnInit (if any), then OnInit (or the v2 __init__ pin) on
// every local device, then ReadyToSend.
extern "C" int pe_start(pe_engine* E, double seconds) {
    return pe_protected(E, seconds, [E]() {
        if (PE_SUPERVISOR) pe_sup_start(E);
        for (uint32_t d = 0; d < E->n_devices && !pe_halted(E); d++) {
            uint32_t t = pe_type(E, d);
            if (!pe_local(E, d) || pe_is_external[t]) continue;
            pe_watch(E, PE_EV_INIT, d, 0);
            E->cur_dev = d;
            E->cur_handler = PE_H_INIT;
            pe_dispatch_init(E, t, pe_slot(E, d));
            E->init_calls++;
        }
        for (uint32_t d = 0; d < E->n_devices && !pe_halted(E); d++)
            if (pe_local(E, d)) pe_update(E, d, pe_type(E, d));
        return E->stop ? (int)PE_STOPPED : (int)PE_BUDGET;
    });
}

extern "C" int pe_run(pe_engine* E, uint64_t budget, double seconds) {
    int status = pe_protected(E, seconds, [E, budget]() {
#ifndef PE_NO_WATCHERS
        if (pe_watching(E))
            return E->random_order ? pe_loop<true, true>(E, budget) : pe_loop<false, true>(E, budget);
#endif
        return E->random_order ? pe_loop<true, false>(E, budget) : pe_loop<false, false>(E, budget);
    });
    if (status == PE_IDLE || status == PE_STOPPED) pe_trace_input(E, PE_TR_RETURN, nullptr, 0, status);
    return status;
}

extern "C" int pe_hardware_idle(pe_engine* E, double seconds) {
    return pe_protected(E, seconds, [E]() {
        pe_trace_input(E, PE_TR_HWIDLE, nullptr, 0);
        pe_sup_idle_round(E);
        for (uint32_t d = 0; d < E->n_devices && !pe_halted(E); d++) {
            uint32_t t = pe_type(E, d);
            if (!pe_has_hwidle[t] || !pe_local(E, d)) continue;
            pe_watch(E, PE_EV_HWIDLE, d, 0);
            E->cur_dev = d;
            E->cur_handler = PE_H_HWIDLE;
            pe_dispatch_hwidle(E, t, pe_slot(E, d));
            E->hwidle_calls++;
            pe_update(E, d, t);
        }
        return E->stop ? (int)PE_STOPPED : (int)PE_BUDGET;
    });
}

// The run ended idle: the end-of-run calls (a supervisor's, see supervisor.hpp).
extern "C" int pe_finish(pe_engine* E, double seconds) {
    return pe_protected(E, seconds, [E]() {
        pe_trace_input(E, PE_TR_FINISH, nullptr, 0);
        pe_sup_finish(E);
        return E->stop ? (int)PE_STOPPED : (int)PE_BUDGET;
    });
}

extern "C" const char* pe_inject(pe_engine* E, const uint8_t* data, size_t length) {
    uint64_t records = 0;
    for (size_t at = 0, used = 0; at < length; at += used, records++) {
        const char* err = pe_check_record(E, data + at, length - at, &used);
        if (err) return err;
    }
    E->inbox_records += records;
    if (E->inbox_pos > E->inbox.size() / 2) {      // drop what was consumed before growing
        E->inbox.erase(E->inbox.begin(), E->inbox.begin() + E->inbox_pos);
        E->inbox_pos = 0;
    }
    E->inbox.insert(E->inbox.end(), data, data + length);
    pe_trace_input(E, PE_TR_INJECT, data, (uint32_t)length);
    return nullptr;
}

extern "C" size_t pe_outbox(pe_engine* E, uint16_t region, const uint8_t** data) {
    if (region >= E->outbox.size()) { *data = nullptr; return 0; }   // no such region: nothing for it
    *data = E->outbox[region].data();
    return E->outbox[region].size();
}

extern "C" void pe_outbox_clear(pe_engine* E, uint16_t region) { E->outbox[region].clear(); }

extern "C" size_t pe_log_take(pe_engine* E, const char** data) {
    *data = E->log.data();
    return E->log.size();
}

extern "C" void pe_log_clear(pe_engine* E) { E->log.clear(); }

extern "C" void pe_get_outcome(pe_engine* E, pe_outcome* o) {
    o->stop = E->stop;
    o->exit_code = E->exit_code;
    o->fail_kind = E->fail_kind;
    o->fail_handler = E->fail_handler;
    o->fail_pin = E->fail_pin;
    o->fail_line = E->fail_line;
    o->fail_dev = E->fail_dev;
    o->fail_text = E->fail_text;
    o->delivered = E->delivered;
    o->sends = E->sends;
    o->cancelled = E->cancelled;
    o->steps = E->steps;
    o->devidle_calls = E->devidle_calls;
    o->remote_sent = E->remote_sent;
    o->remote_received = E->remote_received;
    o->remote_bytes = E->remote_bytes;
}

// ---- watchers (debug.hpp, trace.hpp) ----------------------------------------------

extern "C" int pe_has_watchers(void) { return pe_watchers; }

extern "C" void pe_debug_attach(pe_engine* E, pe_stop_fn fn, void* ctx) {
    if (!E->debug) E->debug = new pe_debug();
    E->debug->fn = fn;
    E->debug->ctx = ctx;
}

extern "C" void pe_debug_breaks(pe_engine* E, const uint32_t* quads, uint32_t n) {
    E->debug->bps.assign((const pe_bp*)quads, (const pe_bp*)quads + n);
    pe_debug_arm(E);
}

extern "C" void pe_debug_run(pe_engine* E, int stepping, uint64_t steps) {
    E->debug->stepping = stepping;
    E->debug->step_left = steps;
    pe_debug_arm(E);
}

extern "C" const char* pe_debug_inject(pe_engine* E, uint32_t dev, uint32_t pin, uint32_t slot,
                                       const uint8_t* msg, uint32_t size) {
    if (dev >= E->n_devices || !pe_local(E, dev)) return "no such device in this region";
    if (size > PE_MAXMSG) return "message longer than any message type";
    pe_injected m = {dev, slot, (uint16_t)pin, (uint16_t)size, {}};
    memcpy(m.msg, msg, size);
    E->debug->queue.push_back(m);
    pe_debug_arm(E);
    return nullptr;
}

// Events run (handler calls; a stop's own event not yet): the engine's counters.
extern "C" uint64_t pe_events(pe_engine* E) {
    return E->init_calls + E->sends + E->delivered + E->devidle_calls + E->hwidle_calls;
}

extern "C" void pe_debug_touch(pe_engine* E, uint32_t dev) {
    E->debug->touched.push_back(dev);
    pe_debug_arm(E);
}

extern "C" size_t pe_debug_queued(pe_engine* E, const uint8_t** data, size_t* entry) {
    // the injected messages not delivered yet, as pe_injected entries
    static thread_local std::vector<pe_injected> flat;
    flat.assign(E->debug->queue.begin(), E->debug->queue.end());
    *data = (const uint8_t*)flat.data();
    *entry = sizeof(pe_injected);
    return flat.size();
}

extern "C" size_t pe_debug_pool(pe_engine* E, const uint8_t** data, size_t* entry) {
    *data = E->pool.data();
    *entry = PE_POOL_ENTRY;
    return E->pool.size() / PE_POOL_ENTRY;
}

extern "C" size_t pe_debug_inbox(pe_engine* E, const uint8_t** data) {
    *data = E->inbox.data() + E->inbox_pos;
    return E->inbox.size() - E->inbox_pos;
}

extern "C" void pe_trace_start(pe_engine* E) {
    if (!E->trace) E->trace = new pe_trace();
    E->watch |= PE_W_TRACE;
}

extern "C" size_t pe_trace_take(pe_engine* E, const uint8_t** data) {
    *data = E->trace ? E->trace->buf.data() : nullptr;
    return E->trace ? E->trace->used : 0;
}

extern "C" void pe_trace_clear(pe_engine* E) { if (E->trace) E->trace->used = 0; }
