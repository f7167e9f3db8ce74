// The instance reader: pass 2 of psim/reader.py in C.  Python feeds the file
// in 1 MB blocks (so gzip and in-memory XML work unchanged); libxml2's SAX2
// push parser calls us per element; each device and edge goes straight to
// the pl_loader (loader.cpp, same translation unit) and each P or S value is
// decoded into the packed per-type arrays (value_layout.hpp).
//
// Why libxml2 rather than expat: on the 1M-device, 4M-edge mesh (218 MB)
// libxml2's SAX2 push parser took 0.6-0.9 s and expat 1.7-2.5 s (with or
// without namespace processing; docs/performance.md).  It is also lxml's
// parser, so line numbers are the ones lxml's sourceline gave, and a
// malformed file fails where lxml says it does.
//
// The reader stops at the first problem and reports it (pr_problem); values
// it does not decode are left (pr_left) for Python to pack and, if bad, to
// word the error, so every message stays Python's.
#define U_DISABLE_RENAMING 1    // libxml2's headers pull in ICU's, which would rename our pl_* symbols
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/SAX2.h>
#include <string>
#include <thread>
#include <vector>
#include "value_layout.hpp"

extern "C" {
#include "instance_reader.h"
}

namespace {

enum Owner { NONE, DEVICE, EDGE, GRAPH };

struct Text {       // an attribute's value, or absent
    const char* p = nullptr;
    size_t n = 0;
    bool blank() const {
        for (size_t i = 0; i < n; i++)
            if (p[i] != ' ' && p[i] != '\n' && p[i] != '\t' && p[i] != '\r') return false;
        return true;
    }
};

struct Left {
    int kind;
    uint32_t index;
    uint64_t slot, line;
    std::string owner, text;
};

// Edges wait in chunks for the loader, which indexes one chunk in a thread
// of its own while libxml2 parses the next: the loader's id lookups cost
// about what parsing does, so the two overlap.
constexpr size_t EDGE_CHUNK = 1 << 15;

struct EdgeRecord {
    size_t path, path_len;       // in EdgeChunk::bytes
    int64_t send_index;
    uint64_t line;
    int64_t text[2];             // P, S: offset in bytes, or -1
    size_t text_len[2];
};

struct EdgeChunk {
    std::vector<EdgeRecord> records;
    std::string bytes;
    void clear() { records.clear(); bytes.clear(); }
};

struct Problem {                 // what stopped the reader, and its texts
    pr_problem p{};
    std::string a, b;
};

}  // namespace

struct pr_reader {
    pl_loader* L;
    std::string ns, graph_type;
    const xmlChar* ns_name = nullptr;      // the namespace as libxml2 last gave it
    bool v4;
    std::vector<std::string> type_names;
    std::vector<uint8_t> external;
    std::vector<uint64_t> n_of_type;       // devices read, per type
    pv::Layout layouts[4][64];             // [kind][type or edge kind]
    std::vector<pv::Layout> more[4];       // beyond 64
    std::vector<std::string> values[4];    // the packed arrays
    std::vector<uint32_t> externals;
    int64_t halt = -1;
    xmlParserCtxtPtr ctxt = nullptr;
    // the element being read
    Owner last = NONE;
    uint32_t cur_index = 0;                // device type or edge kind (-1: none)
    uint64_t cur_slot = 0, cur_line = 0;
    std::string cur_name;
    // text being read: a <P>/<S> child or the instance's <Properties>
    Owner text_owner = NONE;
    int text_slot = 0;
    std::string text;
    // the instance
    bool instance = false;
    std::string graph_text[4];             // id, graphTypeId, <Properties> text, P attribute
    bool graph_has[4] = {false, false, false, false};
    // what stopped it
    pr_problem problem{};
    std::string problem_a, problem_b;
    std::vector<Left> left;
    // edges: the chunk being read, the one the loader indexes, its findings
    EdgeChunk reading, indexing;
    std::thread loader_thread;
    Problem edge_problem;
    std::vector<Left> edge_left;

    pv::Layout& layout(int kind, uint32_t i) {
        if (i < 64) return layouts[kind][i];
        if (more[kind].size() <= i - 64) more[kind].resize(i - 63);
        return more[kind][i - 64];
    }
};

namespace {

uint64_t line_of(pr_reader* R) { return R->ctxt && R->ctxt->input ? (uint64_t)R->ctxt->input->line : 0; }

void fail(pr_reader* R, int code, const std::string& a = "", const Text* b = nullptr, int detail = 0) {
    if (R->problem.code) return;
    R->problem.code = code;
    R->problem.detail = detail;
    R->problem.line = line_of(R);
    R->problem_a = a;
    R->problem.b_present = b && b->p;
    if (b && b->p) R->problem_b.assign(b->p, b->n);
    xmlStopParser(R->ctxt);
}

Text attr(const xmlChar** at, int n, const char* name) {
    for (int i = 0; i < n; i++, at += 5)
        if (!at[2] && strcmp((const char*)at[0], name) == 0)
            return Text{(const char*)at[3], (size_t)(at[4] - at[3])};
    return Text{};
}

// A value over block `slot` of values[kind][index], or left to Python.
void value(pr_reader* R, std::vector<Left>& left, int kind, uint32_t index, uint64_t slot, const char* p, size_t n,
           uint64_t line, const std::string& owner) {
    const pv::Layout& lay = R->layout(kind, index);
    const size_t size = lay.image.size();
    uint8_t* block = (uint8_t*)&R->values[kind][index][0] + slot * size;    // (size 0: writes nothing)
    memcpy(block, lay.image.data(), size);    // a <P> child after a P attribute starts afresh
    if (!left.empty()) {                      // ... and replaces a P attribute left to Python
        const Left& l = left.back();
        if (l.kind == kind && l.index == index && l.slot == slot) left.pop_back();
    }
    if (pv::decode(lay, R->v4, p, p + n, block)) return;
    left.push_back(Left{kind, index, slot, line, owner, std::string(p, n)});
}

void grow(pr_reader* R, int kind, uint32_t index) {    // one more block, the default
    const std::string& image = R->layout(kind, index).image;
    if (!image.empty()) R->values[kind][index] += image;
}

void settle(pr_reader* R, bool all);

void device(pr_reader* R, const xmlChar** at, int n, bool ext) {
    Text id = attr(at, n, "id"), type = attr(at, n, "type");
    R->last = DEVICE;
    R->cur_name.assign(id.p ? id.p : "", id.n);
    R->cur_line = line_of(R);
    if (!id.p) return fail(R, PR_E_NO_ID, "", nullptr, ext);
    uint32_t t = R->cur_index;
    if (!type.p || t >= R->type_names.size() || R->type_names[t].size() != type.n ||
        memcmp(R->type_names[t].data(), type.p, type.n) != 0) {
        for (t = 0; t < R->type_names.size(); t++)
            if (type.p && R->type_names[t].size() == type.n && memcmp(R->type_names[t].data(), type.p, type.n) == 0)
                break;
        if (t == R->type_names.size()) return fail(R, PR_E_UNKNOWN_TYPE, R->cur_name, &type, ext);
    }
    if ((bool)R->external[t] != ext) return fail(R, ext ? PR_E_NOT_EXTERNAL : PR_E_EXTERNAL, R->cur_name, &type, ext);
    settle(R, true);                      // edges read before this device go first (the loader is not shared)
    if (R->problem.code) return;
    uint16_t t16 = (uint16_t)t;
    const uint32_t index = pl_n_devices(R->L);
    if (pl_add_devices(R->L, id.p, id.n, &t16, 1) >= 0) return fail(R, PR_E_DUPLICATE_ID, R->cur_name, nullptr, ext);
    if (ext && R->cur_name == "__halt__") R->halt = index;
    else if (ext) R->externals.push_back(index);
    R->cur_index = t;
    R->cur_slot = R->n_of_type[t]++;
    grow(R, PR_DEVICE_P, t);
    grow(R, PR_DEVICE_S, t);
    Text p = attr(at, n, "P"), s = attr(at, n, "S");
    if (p.p) value(R, R->left, PR_DEVICE_P, t, R->cur_slot, p.p, p.n, R->cur_line, R->cur_name);
    if (s.p) value(R, R->left, PR_DEVICE_S, t, R->cur_slot, s.p, s.n, R->cur_line, R->cur_name);
}

bool send_index(const Text& t, int64_t* out) {   // Python's int(): [ws][+-]digits[ws]
    size_t i = 0, j = t.n;
    while (i < j && isspace((uint8_t)t.p[i])) i++;
    while (j > i && isspace((uint8_t)t.p[j - 1])) j--;
    bool neg = i < j && t.p[i] == '-';
    if (i < j && (t.p[i] == '-' || t.p[i] == '+')) i++;
    uint64_t u;
    if (!pv::digits_u64(t.p + i, t.p + j, 10, &u)) return false;
    *out = neg ? (u ? -1 : 0) : (u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u);   // negative: none
    return true;
}

// The loader's half of a chunk of edges (in its thread): paths to device
// and pin indices, and their values.  Stops at the first problem.
void index_edges(pr_reader* R, const EdgeChunk& c) {
    Problem& bad = R->edge_problem;
    std::string path;
    for (const EdgeRecord& r : c.records) {
        if (bad.p.code) return;
        path.assign(c.bytes, r.path, r.path_len);
        int err = add_edge(R->L, path.data(), path.size(), r.send_index);
        const uint64_t e = pl_n_edges(R->L) - 1;
        const int32_t kind = err ? -1 : pl_edge_kind(R->L, e);
        const uint64_t slot = kind >= 0 ? pl_edge_slot(R->L, e) : 0;
        if (kind >= 0) {
            grow(R, PR_EDGE_P, kind);
            grow(R, PR_EDGE_S, kind);
        }
        for (int s = 0; s < 2 && !err; s++) {
            if (r.text[s] < 0) continue;
            const char* t = c.bytes.data() + r.text[s];
            if (kind < 0 && !Text{t, r.text_len[s]}.blank()) err = -1;      // values, but nowhere to put them
            else if (kind >= 0) value(R, R->edge_left, PR_EDGE_P + s, kind, slot, t, r.text_len[s], r.line, path);
        }
        if (err) {
            bad.p.code = err < 0 ? PR_E_EDGE_VALUES : PR_E_EDGE;
            bad.p.detail = err;
            bad.p.line = r.line;
            bad.a = path;
        }
    }
}

// Wait for the loader's thread; with `all`, index the chunk being read too.
// An edge's problem comes before any the parser met since: it wins.
void settle(pr_reader* R, bool all) {
    if (R->loader_thread.joinable()) R->loader_thread.join();
    if (all && !R->reading.records.empty()) {
        index_edges(R, R->reading);
        R->reading.clear();
    }
    if (R->edge_problem.p.code) {
        R->problem = R->edge_problem.p;
        R->problem_a = R->edge_problem.a;
        R->problem_b.clear();
        if (R->ctxt) xmlStopParser(R->ctxt);
    }
}

void hand_over_edges(pr_reader* R) {
    settle(R, false);
    if (R->problem.code) return;
    std::swap(R->reading, R->indexing);
    R->reading.clear();
    R->loader_thread = std::thread(index_edges, R, std::cref(R->indexing));
}

void keep_text(EdgeChunk& c, int slot, const Text& t) {
    EdgeRecord& r = c.records.back();
    r.text[slot] = (int64_t)c.bytes.size();
    r.text_len[slot] = t.n;
    c.bytes.append(t.p, t.n);
}

void edge(pr_reader* R, const xmlChar** at, int n) {
    Text path = attr(at, n, "path"), si = attr(at, n, "sendIndex");
    R->last = EDGE;
    R->cur_line = line_of(R);
    if (!path.p) return fail(R, PR_E_NO_PATH);
    int64_t index = -1;
    if (si.p && !send_index(si, &index)) return fail(R, PR_E_SEND_INDEX, std::string(path.p, path.n), &si);
    EdgeChunk& c = R->reading;
    if (c.records.size() >= EDGE_CHUNK) {
        hand_over_edges(R);
        if (R->problem.code) return;
    }
    c.records.push_back(EdgeRecord{c.bytes.size(), path.n, index, R->cur_line, {-1, -1}, {0, 0}});
    c.bytes.append(path.p, path.n);
    if (!R->v4) return;
    Text p = attr(at, n, "P"), s = attr(at, n, "S");
    if (p.p && p.n) keep_text(c, 0, p);
    if (s.p && s.n) keep_text(c, 1, s);
}

void end_text(pr_reader* R) {
    Owner owner = R->text_owner;
    R->text_owner = NONE;
    if (owner == GRAPH) {
        R->graph_text[2] = R->text;
        R->graph_has[2] = true;
    } else if (owner == DEVICE) {
        value(R, R->left, PR_DEVICE_P + R->text_slot, R->cur_index, R->cur_slot, R->text.data(), R->text.size(),
              R->cur_line, R->cur_name);
    } else if (owner == EDGE) {
        keep_text(R->reading, R->text_slot, Text{R->text.data(), R->text.size()});
    }
}

void begin_instance(pr_reader* R, const xmlChar** at, int n) {
    if (R->instance) return fail(R, PR_E_TWO_INSTANCES);
    R->instance = true;
    const char* names[] = {"id", "graphTypeId", nullptr, "P"};
    for (int i : {0, 1, 3}) {
        Text t = attr(at, n, names[i]);
        R->graph_has[i] = t.p != nullptr;
        R->graph_text[i].assign(t.p ? t.p : "", t.n);
    }
    if (!R->graph_has[1] || R->graph_text[1] != R->graph_type) fail(R, PR_E_GRAPH_TYPE);
}

void on_start(void* ctx, const xmlChar* local, const xmlChar*, const xmlChar* uri, int, const xmlChar**,
              int n_attrs, int, const xmlChar** attrs) {
    pr_reader* R = (pr_reader*)((xmlParserCtxtPtr)ctx)->_private;
    if (R->text_owner != NONE) end_text(R);
    if (R->problem.code) return;
    const char* l = (const char*)local;
    if (uri != R->ns_name) {             // libxml2 interns names: one pointer per namespace, mostly
        if (!uri || R->ns != (const char*)uri) { R->last = NONE; return; }
        R->ns_name = uri;
    }
    if (strcmp(l, "EdgeI") == 0) return edge(R, attrs, n_attrs);
    if (strcmp(l, "DevI") == 0) return device(R, attrs, n_attrs, false);
    if ((l[0] == 'P' || l[0] == 'S') && !l[1]) {
        if (R->last != NONE) {
            R->text_owner = R->last;
            R->text_slot = l[0] == 'S';
            R->text.clear();
        }
    } else if (strcmp(l, "ExtI") == 0) {
        device(R, attrs, n_attrs, true);
    } else if (strcmp(l, "GraphInstance") == 0) {
        begin_instance(R, attrs, n_attrs);
    } else if (strcmp(l, "Properties") == 0 && R->instance && pl_n_devices(R->L) == 0) {
        R->text_owner = GRAPH;
        R->text.clear();
    } else if (strcmp(l, "M") != 0) {
        R->last = NONE;
    }
}

void on_end(void* ctx, const xmlChar*, const xmlChar*, const xmlChar*) {
    pr_reader* R = (pr_reader*)((xmlParserCtxtPtr)ctx)->_private;
    if (R->text_owner != NONE && !R->problem.code) end_text(R);
}

void on_text(void* ctx, const xmlChar* s, int n) {
    pr_reader* R = (pr_reader*)((xmlParserCtxtPtr)ctx)->_private;
    if (R->text_owner != NONE) R->text.append((const char*)s, n);
}

void on_error(void* ctx, const xmlError* e) {   // the first error, kept (and nothing printed)
    pr_reader* R = (pr_reader*)((xmlParserCtxtPtr)ctx)->_private;
    if (R->problem.code || e->level < XML_ERR_ERROR) return;
    R->problem.code = PR_E_XML;
    R->problem.line = (uint64_t)e->line;
    R->problem_a = e->message ? e->message : "";
}

void fill(pr_problem* out, const pr_problem& p, const std::string& a, const std::string& b) {
    *out = p;
    out->a = a.data();
    out->a_len = a.size();
    out->b = b.data();
    out->b_len = b.size();
}

}  // namespace

extern "C" pr_reader* pr_create(pl_loader* L, const char* ns, int version, const char* graph_type_id,
                                const char* type_names, const uint8_t* external) {
    pr_reader* R = new pr_reader();
    R->L = L;
    R->ns = ns;
    R->v4 = version >= 4;
    R->graph_type = graph_type_id;
    for (const char* p = type_names; *p;) {
        const char* nl = strchr(p, '\n');
        R->type_names.emplace_back(p, nl ? nl - p : strlen(p));
        p = nl ? nl + 1 : p + strlen(p);
    }
    R->external.assign(external, external + R->type_names.size());
    R->n_of_type.assign(R->type_names.size(), 0);
    for (auto& v : R->values) v.resize(std::max<size_t>(R->type_names.size(), L->kind_count.size()));
    xmlSAXHandler sax;
    memset(&sax, 0, sizeof sax);
    sax.initialized = XML_SAX2_MAGIC;
    sax.startElementNs = on_start;
    sax.endElementNs = on_end;
    sax.characters = on_text;
    sax.cdataBlock = on_text;
    sax.serror = (xmlStructuredErrorFunc)on_error;
    R->ctxt = xmlCreatePushParserCtxt(&sax, nullptr, nullptr, 0, nullptr);
    xmlCtxtUseOptions(R->ctxt, XML_PARSE_HUGE | XML_PARSE_NONET);
    R->ctxt->_private = R;
    return R;
}

extern "C" int pr_layout(pr_reader* R, int kind, uint32_t index, const char* description, const uint8_t* deflt,
                         uint32_t size) {
    return R->layout(kind, index).read(description, deflt, size);
}

extern "C" int pr_feed(pr_reader* R, const char* data, size_t len, int final) {
    if (!R->problem.code) {
        int err = xmlParseChunk(R->ctxt, data, (int)len, final);
        if (err && !R->problem.code) {      // an error without a message
            R->problem.code = PR_E_XML;
            R->problem.line = line_of(R);
        }
    }
    if (final || R->problem.code) settle(R, true);
    return R->problem.code;
}

extern "C" void pr_problem_of(pr_reader* R, pr_problem* out) { fill(out, R->problem, R->problem_a, R->problem_b); }
extern "C" uint64_t pr_n_left(pr_reader* R) { return R->left.size() + R->edge_left.size(); }

extern "C" void pr_left(pr_reader* R, uint64_t i, pr_problem* out) {     // devices' first, as in the file
    const Left& l = i < R->left.size() ? R->left[i] : R->edge_left[i - R->left.size()];
    pr_problem p{};
    p.code = l.kind;
    p.index = l.index;
    p.slot = l.slot;
    p.line = l.line;
    p.b_present = 1;
    fill(out, p, l.owner, l.text);
}

extern "C" const uint8_t* pr_values(pr_reader* R, int kind, uint32_t index, size_t* size) {
    const std::string& v = R->values[kind][index];
    *size = v.size();
    return (const uint8_t*)v.data();
}

extern "C" const char* pr_ids(pr_reader* R, size_t* size) {
    *size = R->L->arena.size();
    return R->L->arena.data();
}

extern "C" const char* pr_graph_text(pr_reader* R, int which, size_t* size) {
    *size = R->graph_text[which].size();
    return R->graph_has[which] ? R->graph_text[which].data() : nullptr;
}

extern "C" uint32_t pr_n_externals(pr_reader* R) { return (uint32_t)R->externals.size(); }
extern "C" const uint32_t* pr_externals(pr_reader* R) { return R->externals.data(); }
extern "C" int64_t pr_halt(pr_reader* R) { return R->halt; }

extern "C" void pr_destroy(pr_reader* R) {
    if (R->loader_thread.joinable()) R->loader_thread.join();
    if (R->ctxt) xmlFreeParserCtxt(R->ctxt);
    delete R;
}
