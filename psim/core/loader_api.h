/* The C interface of the instance loader (loader.cpp), as cffi sees it. */
typedef struct pl_loader pl_loader;
typedef struct pl_region pl_region;

enum {
    PL_E_PATH = 1, PL_E_DST_DEVICE, PL_E_SRC_DEVICE, PL_E_DST_PIN, PL_E_SRC_PIN,
    PL_E_MESSAGE, PL_E_SEND_INDEX_BROADCAST,
    PL_E_SEND_INDEX_RANGE, PL_E_SEND_INDEX_DUPLICATE
};

pl_loader* pl_create(const char* pins, uint32_t n_types, uint32_t max_out, uint32_t n_kinds);
void pl_destroy(pl_loader* L);
int64_t pl_add_devices(pl_loader* L, const char* ids, size_t len, const uint16_t* types, uint32_t count);
int64_t pl_add_edges(pl_loader* L, const char* paths, size_t len, const int64_t* send_index,
                     uint32_t count, int* err);
uint32_t pl_find(pl_loader* L, const char* id, size_t len);
uint32_t pl_n_devices(pl_loader* L);
uint64_t pl_n_edges(pl_loader* L);
uint32_t pl_kind_count(pl_loader* L, uint32_t kind);
int32_t pl_edge_kind(pl_loader* L, uint64_t e);
uint32_t pl_edge_slot(pl_loader* L, uint64_t e);
const uint16_t* pl_dev_types(pl_loader* L);
const uint32_t* pl_out_off(pl_loader* L);
const void* pl_edges(pl_loader* L);
const uint32_t* pl_rem_off(pl_loader* L);
const uint16_t* pl_rem_reg(pl_loader* L);
int64_t pl_finish(pl_loader* L, const uint16_t* region, uint16_t my_region, int* err);
pl_region* pl_region_create(pl_loader* L, const uint16_t* region, uint16_t my_region);
void pl_region_destroy(pl_region* R);
const void* pl_region_edges(pl_region* R);
const uint32_t* pl_region_rem_off(pl_region* R);
const uint16_t* pl_region_rem_reg(pl_region* R);
uint64_t pl_adjacency(pl_loader* L, int32_t* starts, int32_t* adjacent);
int64_t pl_find_many(pl_loader* L, const char* ids, size_t len, uint32_t count, uint32_t* out);

/* The loader's state before pl_finish, for the instance cache (psim/instcache.py). */
typedef struct pl_state {
    const char* arena;          /* the ids, each '\0'-terminated, in device order */
    uint64_t arena_len;
    const uint16_t* dev_type;
    uint32_t n_devices;
    const uint32_t* src;
    const uint32_t* dst;
    const uint16_t* spin;
    const uint16_t* dpin;
    const int32_t* sidx;        /* per edge, or -1; NULL when no edge has a sendIndex */
    uint64_t n_edges;
} pl_state;

/* pl_import's errors: why a cache file's state was refused */
enum {
    PL_I_NOT_EMPTY = 1, PL_I_IDS, PL_I_TYPE, PL_I_DUPLICATE, PL_I_DEVICE, PL_I_PIN, PL_I_SEND_INDEX,
    PL_I_MEMORY
};

void pl_export(pl_loader* L, pl_state* out);
int pl_import(pl_loader* L, const pl_state* in);
const char* pl_id(pl_loader* L, uint32_t d);
