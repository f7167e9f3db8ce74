// The instance loader's C half: device ids to indices, edge paths to
// (device, pin) pairs, and the edge CSR the engine runs on.  Python streams
// the XML (lxml) and hands over ids and paths in large '\n'-separated chunks,
// so no Python work is done per edge.  Compiled once, not per graph type.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>
#include <algorithm>
#include "records.h"

extern "C" {
#include "loader_api.h"
}

namespace {

struct Pin {
    std::string name;
    uint16_t index;
    int32_t message;   // message type index
    int32_t kind;      // input pins: edge data kind, or -1; output pins: indexed
};

struct PinTable {
    std::vector<Pin> in, out;
};

const Pin* find_pin(const std::vector<Pin>& pins, const char* s, size_t n) {
    for (const Pin& p : pins)
        if (p.name.size() == n && memcmp(p.name.data(), s, n) == 0) return &p;
    return nullptr;
}

uint64_t hash_bytes(const char* s, size_t n) {   // FNV-1a, then a mix
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

}  // namespace

struct pl_loader {
    std::vector<PinTable> types;
    uint32_t max_out;
    // device ids: arena of '\0'-terminated ids, open-addressing index
    std::vector<char> arena;
    std::vector<uint64_t> id_at;
    std::vector<uint16_t> dev_type;
    std::vector<uint32_t> table;   // device index + 1, 0 = empty
    // edges in file order
    std::vector<uint32_t> src, dst, slot;
    std::vector<uint16_t> spin, dpin;
    std::vector<int32_t> sidx;      // per edge, once any edge has a sendIndex
    bool has_sidx = false;
    std::vector<uint32_t> kind_count;
    // the CSR
    std::vector<uint32_t> out_off, rem_off;
    std::vector<pe_edge> edges;
    std::vector<uint16_t> rem_reg;
};

static void grow_table(pl_loader* L) {
    std::vector<uint32_t> t(std::max<size_t>(1024, L->table.size() * 2), 0);
    const size_t mask = t.size() - 1;
    for (uint32_t d = 0; d < L->id_at.size(); d++) {
        const char* s = &L->arena[L->id_at[d]];
        size_t i = hash_bytes(s, strlen(s)) & mask;
        while (t[i]) i = (i + 1) & mask;
        t[i] = d + 1;
    }
    L->table.swap(t);
}

static uint32_t lookup(const pl_loader* L, const char* s, size_t n) {
    if (L->table.empty()) return UINT32_MAX;
    const size_t mask = L->table.size() - 1;
    for (size_t i = hash_bytes(s, n) & mask; L->table[i]; i = (i + 1) & mask) {
        const char* id = &L->arena[L->id_at[L->table[i] - 1]];
        if (strncmp(id, s, n) == 0 && id[n] == 0) return L->table[i] - 1;
    }
    return UINT32_MAX;
}

extern "C" pl_loader* pl_create(const char* pins, uint32_t n_types, uint32_t max_out, uint32_t n_kinds) {
    pl_loader* L = new pl_loader();
    L->types.resize(n_types);
    L->max_out = max_out;
    L->kind_count.assign(n_kinds, 0);
    // lines: "I|O <type> <pin index> <message> <kind> <name>"
    const char* p = pins;
    while (*p) {
        char dir;
        unsigned t, index;
        int message, kind, used = 0;
        char name[256];
        if (sscanf(p, "%c %u %u %d %d %255s%n", &dir, &t, &index, &message, &kind, name, &used) != 6) break;
        Pin pin{name, (uint16_t)index, message, kind};
        (dir == 'I' ? L->types[t].in : L->types[t].out).push_back(pin);
        p += used;
        while (*p == '\n') p++;
    }
    return L;
}

extern "C" void pl_destroy(pl_loader* L) { delete L; }

extern "C" int64_t pl_add_devices(pl_loader* L, const char* ids, size_t len, const uint16_t* types, uint32_t count) {
    const char* p = ids;
    const char* end = ids + len;
    for (uint32_t i = 0; i < count; i++) {
        const char* nl = (const char*)memchr(p, '\n', end - p);
        size_t n = (nl ? nl : end) - p;
        if (lookup(L, p, n) != UINT32_MAX) return i;
        if ((L->id_at.size() + 1) * 2 > L->table.size()) grow_table(L);
        L->id_at.push_back(L->arena.size());
        L->arena.insert(L->arena.end(), p, p + n);
        L->arena.push_back(0);
        L->dev_type.push_back(types[i]);
        const size_t mask = L->table.size() - 1;
        size_t h = hash_bytes(p, n) & mask;
        while (L->table[h]) h = (h + 1) & mask;
        L->table[h] = (uint32_t)L->id_at.size();
        p += n + 1;
    }
    return -1;
}

extern "C" uint32_t pl_find(pl_loader* L, const char* id, size_t len) { return lookup(L, id, len); }

// One path "dst:dpin-src:spin"; returns 0 or a PL_E_* code.
static int add_edge(pl_loader* L, const char* s, size_t n, int64_t send_index) {
    const char* c1 = (const char*)memchr(s, ':', n);
    const char* dash = c1 ? (const char*)memchr(c1, '-', s + n - c1) : nullptr;
    const char* c2 = dash ? (const char*)memchr(dash, ':', s + n - dash) : nullptr;
    if (!c2 || c1 == s || dash == c1 + 1 || c2 == dash + 1 || c2 + 1 == s + n) return PL_E_PATH;
    uint32_t d = lookup(L, s, c1 - s);
    if (d == UINT32_MAX) return PL_E_DST_DEVICE;
    uint32_t sdev = lookup(L, dash + 1, c2 - dash - 1);
    if (sdev == UINT32_MAX) return PL_E_SRC_DEVICE;
    const Pin* in = find_pin(L->types[L->dev_type[d]].in, c1 + 1, dash - c1 - 1);
    if (!in) return PL_E_DST_PIN;
    const Pin* out = find_pin(L->types[L->dev_type[sdev]].out, c2 + 1, s + n - c2 - 1);
    if (!out) return PL_E_SRC_PIN;
    if (in->message != out->message) return PL_E_MESSAGE;
    if (send_index >= 0 && !out->kind) return PL_E_SEND_INDEX_BROADCAST;
    if (send_index > INT32_MAX) return PL_E_SEND_INDEX_RANGE;
    L->dst.push_back(d);
    L->dpin.push_back(in->index);
    L->src.push_back(sdev);
    L->spin.push_back(out->index);
    if (send_index >= 0 && !L->has_sidx) {
        L->has_sidx = true;
        L->sidx.assign(L->src.size() - 1, -1);
    }
    if (L->has_sidx) L->sidx.push_back((int32_t)send_index);
    L->slot.push_back(in->kind >= 0 ? L->kind_count[in->kind]++ : 0);
    return 0;
}

extern "C" int64_t pl_add_edges(pl_loader* L, const char* paths, size_t len, const int64_t* send_index,
                                uint32_t count, int* err) {
    const char* p = paths;
    const char* end = paths + len;
    for (uint32_t i = 0; i < count; i++) {
        const char* nl = (const char*)memchr(p, '\n', end - p);
        size_t n = (nl ? nl : end) - p;
        *err = add_edge(L, p, n, send_index ? send_index[i] : -1);
        if (*err) return i;
        p += n + 1;
    }
    return -1;
}

extern "C" uint32_t pl_n_devices(pl_loader* L) { return (uint32_t)L->id_at.size(); }
extern "C" uint64_t pl_n_edges(pl_loader* L) { return L->src.size() ? L->src.size() : L->edges.size(); }
extern "C" uint32_t pl_kind_count(pl_loader* L, uint32_t kind) { return L->kind_count[kind]; }
extern "C" int32_t pl_edge_kind(pl_loader* L, uint64_t e) {
    return L->types[L->dev_type[L->dst[e]]].in[L->dpin[e]].kind;
}
extern "C" uint32_t pl_edge_slot(pl_loader* L, uint64_t e) { return L->slot[e]; }
extern "C" const uint16_t* pl_dev_types(pl_loader* L) { return L->dev_type.data(); }
extern "C" const uint32_t* pl_out_off(pl_loader* L) { return L->out_off.data(); }
extern "C" const void* pl_edges(pl_loader* L) { return L->edges.data(); }
extern "C" const uint32_t* pl_rem_off(pl_loader* L) { return L->rem_off.empty() ? nullptr : L->rem_off.data(); }
extern "C" const uint16_t* pl_rem_reg(pl_loader* L) { return L->rem_reg.data(); }

// Edges of each (source device, output pin) in send-index order: by their
// sendIndex attributes when every edge of that pin has one, else file order.
static int64_t order_edges(pl_loader* L, std::vector<uint64_t>& order, int* err) {
    const uint64_t keys = (uint64_t)L->id_at.size() * L->max_out;
    std::vector<int64_t> by_index;
    for (uint64_t k = 0; k < keys; k++) {
        const uint64_t lo = L->out_off[k], hi = L->out_off[k + 1];
        size_t with = 0;
        if (!L->has_sidx) break;
        for (uint64_t j = lo; j < hi; j++) with += L->sidx[order[j]] >= 0;
        if (with != hi - lo) continue;                // not all numbered: file order (spec)
        by_index.assign(hi - lo, -1);
        for (uint64_t j = lo; j < hi; j++) {
            const int64_t s = L->sidx[order[j]];
            *err = s >= (int64_t)(hi - lo) ? PL_E_SEND_INDEX_RANGE
                 : by_index[s] >= 0 ? PL_E_SEND_INDEX_DUPLICATE : 0;
            if (*err) return (int64_t)order[j];
            by_index[s] = (int64_t)order[j];
        }
        for (uint64_t j = lo; j < hi; j++) order[j] = (uint64_t)by_index[j - lo];
    }
    return -1;
}

// One region's view of the CSR: the remote flag of each edge (its
// destination in another region), and the distinct remote regions each
// (device, pin) reaches, listed in rem_reg[rem_off[k]:rem_off[k + 1]].
static void mark_remote(const pl_loader* L, const uint16_t* region, uint16_t my_region, pe_edge* edges,
                        std::vector<uint32_t>& rem_off, std::vector<uint16_t>& rem_reg) {
    const uint64_t keys = (uint64_t)L->id_at.size() * L->max_out;
    rem_off.assign(keys + 1, 0);
    rem_reg.clear();
    std::vector<uint16_t> regs;
    for (uint64_t k = 0; k < keys; k++) {
        regs.clear();
        for (uint32_t i = L->out_off[k]; i < L->out_off[k + 1]; i++) {
            uint16_t r = region[edges[i].dst];
            edges[i].flags = r != my_region ? PE_EDGE_REMOTE : 0;
            if (r != my_region && std::find(regs.begin(), regs.end(), r) == regs.end()) regs.push_back(r);
        }
        rem_reg.insert(rem_reg.end(), regs.begin(), regs.end());
        rem_off[k + 1] = (uint32_t)rem_reg.size();
    }
}

extern "C" int64_t pl_finish(pl_loader* L, const uint16_t* region, uint16_t my_region, int* err) {
    const uint64_t n_edges = L->src.size();
    const uint64_t keys = (uint64_t)L->id_at.size() * L->max_out;
    // counting sort of edges by (source device, output pin), stable
    L->out_off.assign(keys + 1, 0);
    for (uint64_t e = 0; e < n_edges; e++) L->out_off[(uint64_t)L->src[e] * L->max_out + L->spin[e] + 1]++;
    for (uint64_t k = 0; k < keys; k++) L->out_off[k + 1] += L->out_off[k];
    std::vector<uint64_t> order(n_edges);
    {
        std::vector<uint32_t> fill(L->out_off.begin(), L->out_off.end() - 1);
        for (uint64_t e = 0; e < n_edges; e++) order[fill[(uint64_t)L->src[e] * L->max_out + L->spin[e]]++] = e;
    }
    int64_t bad = order_edges(L, order, err);
    if (bad >= 0) return bad;
    L->edges.resize(n_edges);
    for (uint64_t i = 0; i < n_edges; i++) {
        uint64_t e = order[i];
        L->edges[i] = pe_edge{L->dst[e], L->slot[e], L->dpin[e], 0};
    }
    if (region) mark_remote(L, region, my_region, L->edges.data(), L->rem_off, L->rem_reg);
    std::vector<uint32_t>().swap(L->src);
    std::vector<uint32_t>().swap(L->dst);
    std::vector<uint16_t>().swap(L->spin);
    std::vector<uint16_t>().swap(L->dpin);
    std::vector<int32_t>().swap(L->sidx);
    return -1;
}

// Several regions of one instance in one process (psim --threads): each
// engine needs its own edge flags and remote lists, while the device table
// and out_off stay the loader's, shared.  Call after pl_finish without a
// region map; pl_region_destroy when its engine is gone.
struct pl_region {
    std::vector<pe_edge> edges;
    std::vector<uint32_t> rem_off;
    std::vector<uint16_t> rem_reg;
};

extern "C" pl_region* pl_region_create(pl_loader* L, const uint16_t* region, uint16_t my_region) {
    pl_region* R = new pl_region();
    R->edges = L->edges;
    mark_remote(L, region, my_region, R->edges.data(), R->rem_off, R->rem_reg);
    return R;
}

extern "C" void pl_region_destroy(pl_region* R) { delete R; }
extern "C" const void* pl_region_edges(pl_region* R) { return R->edges.data(); }
extern "C" const uint32_t* pl_region_rem_off(pl_region* R) { return R->rem_off.data(); }
extern "C" const uint16_t* pl_region_rem_reg(pl_region* R) { return R->rem_reg.data(); }

// The undirected graph of devices (both directions, no self loops, no
// repeats), for partitioners.  Call after pl_finish.
extern "C" uint64_t pl_adjacency(pl_loader* L, int32_t* starts, int32_t* adjacent) {
    const uint32_t n = (uint32_t)L->id_at.size();
    std::vector<std::vector<uint32_t>> nb(n);
    for (uint32_t d = 0; d < n; d++)
        for (uint32_t i = L->out_off[(uint64_t)d * L->max_out]; i < L->out_off[(uint64_t)(d + 1) * L->max_out]; i++) {
            uint32_t e = L->edges[i].dst;
            if (e != d) { nb[d].push_back(e); nb[e].push_back(d); }
        }
    uint64_t at = 0;
    for (uint32_t d = 0; d < n; d++) {
        std::sort(nb[d].begin(), nb[d].end());
        nb[d].erase(std::unique(nb[d].begin(), nb[d].end()), nb[d].end());
        if (starts) starts[d] = (int32_t)at;
        if (adjacent) for (uint32_t e : nb[d]) adjacent[at++] = (int32_t)e; else at += nb[d].size();
        if (starts) std::vector<uint32_t>().swap(nb[d]);
    }
    if (starts) starts[n] = (int32_t)at;
    return at;
}

// Indices of many '\n'-separated ids; returns -1, or the position of the
// first id that is not a device.
extern "C" int64_t pl_find_many(pl_loader* L, const char* ids, size_t len, uint32_t count, uint32_t* out) {
    const char* p = ids;
    const char* end = ids + len;
    for (uint32_t i = 0; i < count; i++) {
        const char* nl = (const char*)memchr(p, '\n', end - p);
        size_t n = (nl ? nl : end) - p;
        out[i] = lookup(L, p, n);
        if (out[i] == UINT32_MAX) return i;
        p += n + 1;
    }
    return -1;
}

// ---- the binary instance cache (psim/instcache.py) ---------------------------
#include <exception>
// The loader's state before pl_finish, exported to be written to a file, and
// imported from one.  A cache file may be corrupt or forged, so the import
// checks everything an engine relies on, as pl_add_devices and add_edge do;
// the slots are recomputed rather than trusted.

extern "C" void pl_export(pl_loader* L, pl_state* out) {
    out->arena = L->arena.data();
    out->arena_len = L->arena.size();
    out->dev_type = L->dev_type.data();
    out->n_devices = (uint32_t)L->id_at.size();
    out->src = L->src.data();
    out->dst = L->dst.data();
    out->spin = L->spin.data();
    out->dpin = L->dpin.data();
    out->sidx = L->has_sidx ? L->sidx.data() : nullptr;
    out->n_edges = L->src.size();
}

// Pins of each type by index (nullptr where a type has no such pin).
static std::vector<std::vector<const Pin*>> pins_by_index(const pl_loader* L, bool inputs) {
    std::vector<std::vector<const Pin*>> by(L->types.size());
    for (size_t t = 0; t < L->types.size(); t++)
        for (const Pin& p : inputs ? L->types[t].in : L->types[t].out) {
            if (by[t].size() <= p.index) by[t].resize(p.index + 1, nullptr);
            by[t][p.index] = &p;
        }
    return by;
}

static int import_devices(pl_loader* L, const pl_state* in) {
    const uint32_t n = in->n_devices;
    if (n == 0 ? in->arena_len != 0 : (in->arena_len == 0 || in->arena[in->arena_len - 1] != 0)) return PL_I_IDS;
    L->id_at.reserve(n);
    for (uint64_t at = 0; at < in->arena_len; at += strlen(in->arena + at) + 1) {
        if (L->id_at.size() == n) return PL_I_IDS;
        L->id_at.push_back(at);
    }
    if (L->id_at.size() != n) return PL_I_IDS;
    for (uint32_t d = 0; d < n; d++)
        if (in->dev_type[d] >= L->types.size()) return PL_I_TYPE;
    L->arena.assign(in->arena, in->arena + in->arena_len);
    L->dev_type.assign(in->dev_type, in->dev_type + n);
    size_t size = 1024;
    while (size < 2 * ((size_t)n + 1)) size *= 2;
    L->table.assign(size, 0);
    const size_t mask = size - 1;
    // home slots first (a sequential pass), so that the inserts, random
    // accesses to a table larger than the cache, can prefetch ahead
    std::vector<uint32_t> home(n);
    for (uint32_t d = 0; d < n; d++) {
        const uint64_t at = L->id_at[d], end = d + 1 < n ? L->id_at[d + 1] - 1 : in->arena_len - 1;
        home[d] = (uint32_t)(hash_bytes(&L->arena[at], end - at) & mask);
    }
    constexpr uint32_t AHEAD = 16;
    for (uint32_t d = 0; d < n; d++) {
        if (d + AHEAD < n) __builtin_prefetch(&L->table[home[d + AHEAD]], 1);
        const char* s = &L->arena[L->id_at[d]];
        size_t i = home[d];
        for (; L->table[i]; i = (i + 1) & mask)
            if (strcmp(&L->arena[L->id_at[L->table[i] - 1]], s) == 0) return PL_I_DUPLICATE;
        L->table[i] = d + 1;
    }
    return 0;
}

static int import_edges(pl_loader* L, const pl_state* in) {
    const auto ins = pins_by_index(L, true), outs = pins_by_index(L, false);
    const uint32_t n = in->n_devices;
    const uint64_t m = in->n_edges;
    for (uint64_t e = 0; e < m; e++) {
        const uint32_t s = in->src[e], d = in->dst[e];
        if (s >= n || d >= n) return PL_I_DEVICE;
        const auto& ip = ins[in->dev_type[d]];
        const auto& op = outs[in->dev_type[s]];
        const Pin* ipin = in->dpin[e] < ip.size() ? ip[in->dpin[e]] : nullptr;
        const Pin* opin = in->spin[e] < op.size() ? op[in->spin[e]] : nullptr;
        if (!ipin || !opin || ipin->message != opin->message) return PL_I_PIN;
        if (in->sidx && (in->sidx[e] < -1 || (in->sidx[e] >= 0 && !opin->kind))) return PL_I_SEND_INDEX;
    }
    L->src.assign(in->src, in->src + m);
    L->dst.assign(in->dst, in->dst + m);
    L->spin.assign(in->spin, in->spin + m);
    L->dpin.assign(in->dpin, in->dpin + m);
    L->has_sidx = in->sidx != nullptr;
    if (in->sidx) L->sidx.assign(in->sidx, in->sidx + m);
    L->slot.resize(m);
    for (uint64_t e = 0; e < m; e++) {
        const int32_t kind = ins[L->dev_type[L->dst[e]]][L->dpin[e]]->kind;
        L->slot[e] = kind >= 0 ? L->kind_count[kind]++ : 0;
    }
    return 0;
}

static void clear_state(pl_loader* L) {
    for (auto* v : {&L->src, &L->dst, &L->slot}) std::vector<uint32_t>().swap(*v);
    for (auto* v : {&L->spin, &L->dpin, &L->dev_type}) std::vector<uint16_t>().swap(*v);
    std::vector<int32_t>().swap(L->sidx);
    std::vector<char>().swap(L->arena);
    std::vector<uint64_t>().swap(L->id_at);
    std::vector<uint32_t>().swap(L->table);
    std::fill(L->kind_count.begin(), L->kind_count.end(), 0);
    L->has_sidx = false;
}

extern "C" int pl_import(pl_loader* L, const pl_state* in) {
    if (!L->id_at.empty() || !L->src.empty() || !L->edges.empty()) return PL_I_NOT_EMPTY;
    int err;
    try {
        err = import_devices(L, in);
        if (!err) err = import_edges(L, in);
    } catch (const std::exception&) {
        err = PL_I_MEMORY;
    }
    if (err) clear_state(L);
    return err;
}

extern "C" const char* pl_id(pl_loader* L, uint32_t d) { return &L->arena[L->id_at[d]]; }
