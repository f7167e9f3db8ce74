/* The C interface of a compiled graph module, as Python (cffi) sees it.
 * Kept free of preprocessor directives so cffi can read it as its cdef. */
typedef struct pe_engine pe_engine;

typedef struct {
    uint32_t n_devices;
    const uint16_t* dev_type;
    const uint32_t* out_off;
    const void* edges;
    const uint32_t* rem_off;
    const uint16_t* rem_reg;
    const uint16_t* region;
    uint16_t my_region;
    uint16_t n_regions;
    uint8_t* graph_props;
    uint8_t** props;
    uint8_t** state;
    uint8_t** eprops;
    uint8_t** estate;
    uint32_t halt_dev;
    uint16_t sup_region;
    int random_order;
    uint64_t seed;
    uint64_t max_steps;
    int log_level;
} pe_init;

typedef struct {
    int stop;
    int exit_code;
    int fail_kind;
    int fail_handler;
    int fail_pin;
    int fail_line;
    uint32_t fail_dev;
    const char* fail_text;
    uint64_t delivered, sends, cancelled, steps, devidle_calls;
    uint64_t remote_sent, remote_received, remote_bytes;
} pe_outcome;

pe_engine* pe_create(const pe_init* init);
void pe_destroy(pe_engine* E);
int pe_start(pe_engine* E, double seconds);
int pe_run(pe_engine* E, uint64_t budget, double seconds);
int pe_hardware_idle(pe_engine* E, double seconds);
int pe_finish(pe_engine* E, double seconds);
const char* pe_inject(pe_engine* E, const uint8_t* data, size_t length);
size_t pe_outbox(pe_engine* E, uint16_t region, const uint8_t** data);
void pe_outbox_clear(pe_engine* E, uint16_t region);
size_t pe_log_take(pe_engine* E, const char** data);
void pe_log_clear(pe_engine* E);
void pe_get_outcome(pe_engine* E, pe_outcome* out);
/* Ctrl-C, heard by Python in one thread, for the engines running in the
   others: one in a handler gets the grace period (engine_loop.hpp) */
void pe_interrupt(void);

/* Watchers (debug.hpp, trace.hpp) */
typedef int (*pe_stop_fn)(void* ctx, int reason, int bp, uint32_t kind, uint32_t dev, uint32_t pin,
                          const uint8_t* msg, uint32_t size);
int pe_has_watchers(void);
void pe_debug_attach(pe_engine* E, pe_stop_fn fn, void* ctx);
void pe_debug_breaks(pe_engine* E, const uint32_t* quads, uint32_t n);
void pe_debug_run(pe_engine* E, int stepping, uint64_t steps);
const char* pe_debug_inject(pe_engine* E, uint32_t dev, uint32_t pin, uint32_t slot, const uint8_t* msg, uint32_t size);
void pe_debug_touch(pe_engine* E, uint32_t dev);
uint64_t pe_events(pe_engine* E);
size_t pe_debug_queued(pe_engine* E, const uint8_t** data, size_t* entry);
size_t pe_debug_pool(pe_engine* E, const uint8_t** data, size_t* entry);
size_t pe_debug_inbox(pe_engine* E, const uint8_t** data);
void pe_trace_start(pe_engine* E);
size_t pe_trace_take(pe_engine* E, const uint8_t** data);
void pe_trace_clear(pe_engine* E);
