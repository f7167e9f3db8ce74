// The engine's state and the services handlers call (handler_log,
// handler_exit, assert).  Included by every generated graph module before
// the application's own code; engine_loop.hpp adds the event loop.
#pragma once
#include <cstdint>
#include <cstddef>
#include <cstring>
#include <cstdio>
#include <cstdarg>
#include <cmath>
#include <climits>
#include <vector>
#include <csetjmp>
#include <csignal>
#include "records.h"

typedef _Float16 half;

enum pe_stop_kind { PE_RUNNING = 0, PE_STOP_EXIT = 1, PE_STOP_FAIL = 2 };
enum pe_fail_kind {
    PE_FAIL_NONE = 0, PE_FAIL_ASSERT, PE_FAIL_SEND_INDEX, PE_FAIL_SIGNAL,
    PE_FAIL_TIMEOUT, PE_FAIL_STEPS, PE_FAIL_RECORD,
    PE_FAIL_MEMORY,                 // std::bad_alloc: the memory limit (or the host) refused an allocation
    PE_FAIL_FILE_SIZE,              // SIGXFSZ: a write went past RLIMIT_FSIZE
    PE_FAIL_SUP_STOP,               // an exit requested in the supervisor's end-of-run call (supervisor.hpp)
    PE_FAIL_INTERRUPT               // Ctrl-C, and a handler that went on past the grace period (engine_loop.hpp)
};
// which handler is running: for error messages and for the signal handler
enum pe_handler_kind {
    PE_H_NONE = 0, PE_H_INIT, PE_H_RTS, PE_H_SEND, PE_H_RECV, PE_H_HWIDLE, PE_H_DEVIDLE,
    PE_H_SUP_INIT, PE_H_SUP_IDLE, PE_H_SUP_RECV, PE_H_SUP_STOP
};
enum pe_queue_flags { PE_Q_READY = 1, PE_Q_IDLE = 2 };
static const uint32_t PE_RTC_BIT = 1u << 31;
static const uint32_t PE_SUP_DEV = 0xFFFFFFFEu;   // cur_dev while the supervisor runs (logs, failures)
static const uint8_t PE_NO_PIN = 0xFF;            // in the pe_sup_in/pe_sup_out tables

struct pe_sup_runtime;             // the supervisor, when the graph has one (supervisor.hpp)
struct pe_debug;                   // breakpoints, stepping, injected messages (debug.hpp)
struct pe_trace;                   // the event trace being recorded (trace.hpp)

// Events the loop reports to its watchers (watch.hpp), before the handler
// runs, except PE_EV_SENT: after OnSend, with the message sent.
enum pe_event_kind {
    PE_EV_INIT = 1, PE_EV_SEND, PE_EV_RECV, PE_EV_SENT, PE_EV_DEVIDLE, PE_EV_HWIDLE
};
enum pe_watch_flags { PE_W_DEBUG = 1, PE_W_TRACE = 2 };

struct pe_engine {
    // the instance, as flat arrays (owned by the loader, see loader.cpp)
    uint32_t n_devices;
    const uint16_t* dev_type;
    uint32_t* dev_slot;             // index of the device within its type's arrays
    const uint32_t* out_off;        // CSR: edges of (dev, pin) at out_off[dev*MAXOUT+pin]
    const pe_edge* edges;
    const uint32_t* rem_off;        // remote regions reached by (dev, pin), or null
    const uint16_t* rem_reg;
    const uint16_t* region;         // region of each device, or null: all local
    uint16_t my_region;
    uint16_t n_regions;
    uint8_t* graph_props;
    uint8_t** props;                // per device type
    uint8_t** state;
    uint8_t** eprops;               // per input pin with edge data ("edge kind")
    uint8_t** estate;
    uint32_t halt_dev;              // the __halt__ external, or UINT32_MAX

    // scheduling
    uint32_t* rts;
    uint8_t* qflags;
    uint32_t* ready; uint32_t ready_mask, ready_head, ready_tail;   // FIFO rings
    uint32_t* idleq; uint32_t idle_head, idle_tail;
    bool random_order;
    uint64_t rng;
    std::vector<uint32_t> rset, iset;        // random order: ready/idle sets
    std::vector<uint32_t> rpos, ipos;
    std::vector<uint8_t> pool;               // random order: messages in flight
    std::vector<uint32_t> inflight;          // per device, random order

    // remote traffic (regions)
    std::vector<std::vector<uint8_t>> outbox;   // per region, packed records
    std::vector<uint8_t> inbox;
    size_t inbox_pos;
    uint64_t inbox_records;         // records injected and not yet delivered

    // outcome
    volatile int stop;
    int exit_code;
    int fail_kind, fail_handler, fail_pin, fail_line, fail_signal;
    uint32_t fail_dev;
    char fail_text[512];
    uint64_t max_steps;
    volatile int timed_out;

    // what runs now
    uint32_t cur_dev;
    volatile int cur_handler;
    int cur_pin;
    volatile int in_critical, signal_pending;

    // metrics
    uint64_t delivered, sends, cancelled, steps, devidle_calls;
    uint64_t init_calls, hwidle_calls;     // the debugger counts events by these (pe_events)
    uint64_t remote_sent, remote_received, remote_bytes;

    // supervisor graphs only (supervisor.hpp)
    pe_sup_runtime* sup;
    uint16_t sup_region;            // the region that runs the supervisor, when split
    uint64_t round_left;            // steps left in the current round

    // watchers (watch.hpp): zero unless a debugger or a trace is attached,
    // so a run without them pays one predictable branch per event
    uint32_t watch;
    pe_debug* debug;
    pe_trace* trace;

    // log records: [u32 device, i32 level, u32 length, text]
    int log_level;
    std::vector<char> log;
};

// Per thread: engines of one module may run in several threads at once
// (psim --threads), each in its own.
static thread_local pe_engine* pe_cur;   // the engine running in this thread now (null between calls)
static thread_local int pe_log_level;
static thread_local sigjmp_buf pe_jmp;

struct pe_failure {};              // thrown by assert and run-time errors

// The run fails in the running device and handler (the first failure wins).
static void pe_record_failure(pe_engine* E, int kind, const char* text, int line) {
    if (E->stop == PE_STOP_FAIL) return;
    E->stop = PE_STOP_FAIL;
    E->exit_code = 1;
    E->fail_kind = kind;
    E->fail_dev = E->cur_dev;
    E->fail_handler = E->cur_handler;
    E->fail_pin = E->cur_pin;
    E->fail_line = line;
    snprintf(E->fail_text, sizeof E->fail_text, "%s", text);
}

static void pe_fail(int kind, const char* text, int line) {
    pe_record_failure(pe_cur, kind, text, line);
    throw pe_failure();
}

static void pe_assert_fail(const char* expr, int line) { pe_fail(PE_FAIL_ASSERT, expr, line); }

// An exit request.  Requests share one code and the last one wins, as in the
// reference (a supervisor's FAIL marker then stop_application() ends with 0).
static void pe_exit(int code) {
    pe_engine* E = pe_cur;
    if (E->stop != PE_STOP_FAIL) {
        E->stop = PE_STOP_EXIT;
        E->exit_code = code;
    }
}

static void pe_leave_critical() {
    pe_engine* E = pe_cur;
    E->in_critical = 0;
    if (E->signal_pending) siglongjmp(pe_jmp, 1);   // a timer fired meanwhile
}

static void pe_log_text(int level, const char* text, size_t n) {
    pe_engine* E = pe_cur;
    E->in_critical = 1;
    uint32_t head[3] = {E->cur_dev, (uint32_t)level, (uint32_t)n};
    E->log.insert(E->log.end(), (const char*)head, (const char*)head + sizeof head);
    E->log.insert(E->log.end(), text, text + n);
    pe_leave_critical();
}

// graph_schema's fake_handler_exit ends a run by logging one of these markers.
#define PE_EXIT_SUCCESS "_HANDLER_EXIT_SUCCESS_9be65737_"
#define PE_EXIT_FAIL "_HANDLER_EXIT_FAIL_9be65737_"

// Is a log call one that formats nothing: an exit marker (acted on here) or
// above the run's level?  Inline, so on a literal format (every handler_log
// in practice) g++ folds the marker test away: no string is compared at run
// time, and a filtered call costs one comparison of levels.
static inline bool pe_log_skipped(int level, const char* fmt) {
    if (fmt[0] == '_' && fmt[1] == 'H') {
        if (!strcmp(fmt, PE_EXIT_SUCCESS)) { pe_exit(0); return true; }
        if (!strcmp(fmt, PE_EXIT_FAIL)) { pe_exit(1); return true; }
    }
    return level > pe_log_level;
}

static void pe_vlog(int level, const char* fmt, va_list ap) {
    char buf[1024];
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
    pe_log_text(level, buf, n);
}

static void pe_log_format(int level, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pe_vlog(level, fmt, ap);
    va_end(ap);
}

// handler_log: a call (so every argument is evaluated, as C promises and
// apps rely on: the seed's ring does `++counter` inside one) whose filter
// is inline; only a line that is kept reaches the out-of-line formatter.
template <typename... A>
static inline void pe_log(int level, const char* fmt, A... args) {
    if (!pe_log_skipped(level, fmt)) pe_log_format(level, fmt, args...);
}

static void pe_export(uint32_t key, uint32_t value) {
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%u = %u", key, value);
    pe_log_text(0, buf, n);
}

// The handler API, as graph-schema applications use it.
#define handler_log(level, ...) pe_log((level), __VA_ARGS__)
#define handler_exit(code) pe_exit(code)
#define handler_checkpoint(...) ((void)0)
#define handler_export_key_value(key, value) pe_export((key), (value))
#define PE_ASSERT(c) ((c) ? (void)0 : pe_assert_fail(#c, __LINE__))

// Orchestrator-style field access used by v4 applications
#define GRAPHPROPERTIES(a) (graphProperties->a)
#define DEVICEPROPERTIES(a) (deviceProperties->a)
#define DEVICESTATE(a) (deviceState->a)
#define EDGEPROPERTIES(a) (edgeProperties->a)
#define EDGESTATE(a) (edgeState->a)
#define MSG(a) (message->a)
#define PKT(a) (message->a)
#define RTS(pin) (*readyToSend |= RTS_FLAG_##pin)
