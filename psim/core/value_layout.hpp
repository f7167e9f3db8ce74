// Values of typed data decoded straight into packed bytes, for the instance
// reader (instance_reader.cpp).  A Layout is read from the flat description
// psim/typed.py writes (Layout.description): nodes, children first, root
// last.  Two value syntaxes:
//   v2/v3  JSON members without the outer braces: "a": 1, "t": {"x": [1, 2]},
//          sparse arrays {"3": 7}, "name.member" keys, strings for char arrays;
//   v4     C initialiser lists: {4, {1, 2}, -3.5f, 'c', 0x1F, true}.
// A decoder either writes the value over the block (already the default
// image) and returns true, or returns false when the value is anything it
// is not certain of: malformed, out of range, or a rare form (escapes,
// non-ASCII text, big numbers).  The caller then has Python's packer
// (psim/typed.py) deal with that one value, so the bytes and every error
// message are Python's; C only takes the common path, fast.
#pragma once
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace pv {

struct Member {
    std::string name;
    uint32_t off;
    int node;
};

struct Node {
    char kind = 0;          // 'S', 'A', 'T', 'U'
    char code = 0;          // scalar: struct code, 'c' for char
    uint32_t size = 0;
    uint32_t length = 0;    // array
    int elem = -1;          // array
    int32_t tag = -1;       // union: offset of the tag byte, or -1
    bool text = false;      // array of char/int8/uint8: a string may fill it
    std::vector<Member> members;
};

struct Layout {
    std::vector<Node> nodes;
    std::string image;      // the default block
    bool read(const char* desc, const uint8_t* deflt, uint32_t size);
    const Node& root() const { return nodes.back(); }
};

inline bool Layout::read(const char* p, const uint8_t* deflt, uint32_t size) {
    image.assign((const char*)deflt, size);
    while (*p) {
        Node n;
        int used = 0;
        unsigned count = 0;
        n.kind = *p;
        if (n.kind == 'S') {
            if (sscanf(p, "S %u %c%n", &n.size, &n.code, &used) != 2) return false;
        } else if (n.kind == 'A') {
            if (sscanf(p, "A %u %u %d%n", &n.size, &n.length, &n.elem, &used) != 3) return false;
            const Node& e = nodes.at(n.elem);
            n.text = e.kind == 'S' && (e.code == 'c' || e.code == 'b' || e.code == 'B');
        } else if (n.kind == 'T' || n.kind == 'U') {
            int ok = n.kind == 'T' ? sscanf(p, "T %u %u%n", &n.size, &count, &used)
                                   : sscanf(p, "U %u %d %u%n", &n.size, &n.tag, &count, &used) - 1;
            if (ok != 2) return false;
            p += used;
            for (unsigned i = 0; i < count; i++) {
                Member m{std::string(), 0, 0};
                char name[256];
                int k = n.kind == 'T' ? sscanf(p, " %u %d %255s%n", &m.off, &m.node, name, &used)
                                      : sscanf(p, " %d %255s%n", &m.node, name, &used) + 1;
                if (k != 3) return false;
                m.name = name;
                n.members.push_back(m);
                p += used;
            }
            used = 0;
        } else {
            return false;
        }
        nodes.push_back(n);
        p += used;
        while (*p && *p != '\n') p++;
        if (*p) p++;
    }
    return !nodes.empty() && nodes.back().size == size;
}

// ---- numbers into scalars -------------------------------------------------

// A number as read: an integer (exact) or a double.
struct Number {
    bool is_int;
    bool negative;     // integer: the sign, magnitude in u
    uint64_t u;
    double d;
};

inline bool half_of(double x, uint16_t* out) {
    // IEEE binary16, round half to even (as Python's struct 'e'); overflow
    // and NaN are left to Python
    if (std::isnan(x) || std::fabs(x) >= 65504.0 + 16.0) return false;
    uint16_t sign = std::signbit(x) ? 0x8000 : 0;
    x = std::fabs(x);
    if (x == 0) { *out = sign; return true; }
    int e;
    double f = std::frexp(x, &e);            // x = f * 2^e, 0.5 <= f < 1
    uint32_t bits;
    if (e < -13) {                           // subnormal: units of 2^-24
        double m = std::ldexp(x, 24);
        double r = std::nearbyint(m);        // default rounding: half to even
        bits = (uint32_t)r;                  // may round up into the normals: fine
    } else {
        double m = std::ldexp(f, 11);        // 1024 <= m < 2048
        double r = std::nearbyint(m);
        int ex = e - 1 + 15;
        uint32_t mant = (uint32_t)r;
        if (mant == 2048) { mant = 1024; ex++; }
        if (ex >= 31) return false;
        bits = ((uint32_t)ex << 10) | (mant - 1024);
    }
    *out = sign | (uint16_t)bits;
    return true;
}

template <typename T>
inline void put(uint8_t* at, T v) { memcpy(at, &v, sizeof v); }

// Python's Scalar.check + struct.pack_into, for the values it accepts.
inline bool store(const Node& s, uint8_t* at, const Number& n) {
    const char c = s.code;
    if (c == 'f' || c == 'd' || c == 'e') {
        double d = n.is_int ? (n.negative && n.u ? -(double)n.u : (double)n.u) : n.d;   // -0 is the int 0
        if (n.is_int && n.negative && n.u > (1ull << 63)) return false;
        if (c == 'd') { put(at, d); return true; }
        if (c == 'f') {
            float f = (float)d;
            if (std::isinf(f) && !std::isinf(d)) return false;
            put(at, f);
            return true;
        }
        uint16_t h;
        if (!half_of(d, &h)) return false;
        put(at, h);
        return true;
    }
    int64_t i;
    uint64_t u;
    bool neg;
    if (n.is_int) {
        neg = n.negative && n.u != 0;
        u = n.u;
    } else {                                  // an integral float only
        if (!std::isfinite(n.d) || n.d != std::floor(n.d) || std::fabs(n.d) >= 9.0e15) return false;
        neg = n.d < 0;
        u = (uint64_t)std::fabs(n.d);
    }
    if (c == '?') { at[0] = u != 0; return true; }
    if (neg) {
        if (u > (1ull << 63)) return false;
        i = (int64_t)(0 - u);
    }
    auto fits_signed = [&](int64_t lo, int64_t hi) {
        return neg ? i >= lo : u <= (uint64_t)hi;
    };
    switch (c) {
    case 'b': case 'c':
        if (!fits_signed(INT8_MIN, INT8_MAX)) return false;
        put<int8_t>(at, neg ? (int8_t)i : (int8_t)u); return true;
    case 'h':
        if (!fits_signed(INT16_MIN, INT16_MAX)) return false;
        put<int16_t>(at, neg ? (int16_t)i : (int16_t)u); return true;
    case 'i':
        if (!fits_signed(INT32_MIN, INT32_MAX)) return false;
        put<int32_t>(at, neg ? (int32_t)i : (int32_t)u); return true;
    case 'q':
        if (!fits_signed(INT64_MIN, INT64_MAX)) return false;
        put<int64_t>(at, neg ? i : (int64_t)u); return true;
    case 'B':
        if (neg || u > UINT8_MAX) return false;
        put<uint8_t>(at, (uint8_t)u); return true;
    case 'H':
        if (neg || u > UINT16_MAX) return false;
        put<uint16_t>(at, (uint16_t)u); return true;
    case 'I':
        if (neg || u > UINT32_MAX) return false;
        put<uint32_t>(at, (uint32_t)u); return true;
    case 'Q':
        if (neg) return false;
        put<uint64_t>(at, u); return true;
    }
    return false;
}

inline bool digits_u64(const char* p, const char* e, int base, uint64_t* out) {
    uint64_t v = 0;
    if (p == e) return false;
    for (; p < e; p++) {
        int d = *p >= '0' && *p <= '9' ? *p - '0'
              : base == 16 && *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
              : base == 16 && *p >= 'A' && *p <= 'F' ? *p - 'A' + 10 : -1;
        if (d < 0) return false;
        if (v > (UINT64_MAX - d) / base) return false;   // too big: Python's
        v = v * base + d;
    }
    *out = v;
    return true;
}

// A double from [p, e) in the plain decimal forms: digits, '.', exponent.
// from_chars (correctly rounded, as strtod, and faster: no locale); strtod
// for what it declines ('+', underflow to a subnormal).
inline bool decimal_double(const char* p, const char* e, double* out) {
    auto r = std::from_chars(p, e, *out);
    if (r.ec == std::errc() && r.ptr == e) return std::isfinite(*out);
    char buf[64];
    if (e - p >= (long)sizeof buf) return false;
    memcpy(buf, p, e - p);
    buf[e - p] = 0;
    char* end;
    *out = strtod(buf, &end);
    return end == buf + (e - p) && std::isfinite(*out);
}

// ---- JSON (v2/v3) -----------------------------------------------------------

struct Json {
    const Layout& L;
    const char* p;
    const char* e;

    void ws() { while (p < e && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')) p++; }
    bool eat(char c) { ws(); if (p < e && *p == c) { p++; return true; } return false; }

    // a string without escapes or non-ASCII bytes (else Python's)
    bool string(const char** s, size_t* n) {
        ws();
        if (p >= e || *p != '"') return false;
        const char* q = ++p;
        while (p < e && *p != '"') {
            if (*p == '\\' || (uint8_t)*p >= 0x80 || (uint8_t)*p < 0x20) return false;
            p++;
        }
        if (p >= e) return false;
        *s = q;
        *n = p++ - q;
        return true;
    }

    bool number(Number* n) {    // JSON's grammar exactly: -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?
        ws();
        const char* q = p;
        if (p < e && *p == '-') p++;
        const char* int_start = p;
        if (p < e && *p == '0') p++;
        else if (p < e && *p >= '1' && *p <= '9') while (p < e && *p >= '0' && *p <= '9') p++;
        else return false;
        const char* int_end = p;
        bool frac = false;
        if (p < e && *p == '.') {
            p++;
            if (p >= e || *p < '0' || *p > '9') return false;
            while (p < e && *p >= '0' && *p <= '9') p++;
            frac = true;
        }
        if (p < e && (*p == 'e' || *p == 'E')) {
            p++;
            if (p < e && (*p == '+' || *p == '-')) p++;
            if (p >= e || *p < '0' || *p > '9') return false;
            while (p < e && *p >= '0' && *p <= '9') p++;
            frac = true;
        }
        n->is_int = !frac;
        n->negative = *q == '-';
        if (!frac) return digits_u64(int_start, int_end, 10, &n->u);
        return decimal_double(q, p, &n->d);
    }

    bool scalar(const Node& s, uint8_t* at) {
        ws();
        if (p >= e) return false;
        Number n{true, false, 0, 0};
        if (*p == 't' || *p == 'f') {
            size_t k = *p == 't' ? 4 : 5;
            if ((size_t)(e - p) < k || memcmp(p, *p == 't' ? "true" : "false", k) != 0) return false;
            n.u = *p == 't';
            p += k;
        } else if (*p == '"') {
            const char* s0;
            size_t len;
            if (s.code != 'c' || !string(&s0, &len) || len != 1) return false;
            n.u = (uint8_t)s0[0];
        } else if (!number(&n)) {
            return false;
        }
        return store(s, at, n);
    }

    bool value(const Node& t, uint8_t* at) {
        ws();
        if (p >= e) return false;
        switch (t.kind) {
        case 'S': return scalar(t, at);
        case 'A': return array(t, at);
        case 'T':
            if (*p == '{') { p++; return members(t, at, '}'); }
            if (*p == '[') return positional(t, at);
            return false;
        default:
            if (*p != '{') return false;        // lists for unions: Python's
            p++;
            const char* k;
            size_t n;
            if (!string(&k, &n) || !eat(':') || !union_member(t, at, k, n)) return false;
            return eat('}');                      // more than one member: Python's
        }
    }

    bool array(const Node& a, uint8_t* at) {
        const Node& el = L.nodes[a.elem];
        if (*p == '"') {
            const char* s;
            size_t n;
            if (!a.text || !string(&s, &n) || n > a.length) return false;
            for (size_t i = 0; i < n; i++) {
                Number c{true, false, (uint8_t)s[i], 0};
                if (!store(el, at + i, c)) return false;
            }
            return true;
        }
        if (*p == '{') {                  // sparse: {"3": 7}
            p++;
            if (eat('}')) return true;
            do {
                const char* k;
                size_t n;
                uint64_t i;
                if (!string(&k, &n) || !digits_u64(k, k + n, 10, &i) || i >= a.length || !eat(':')) return false;
                if (!value(el, at + i * el.size)) return false;
            } while (eat(','));
            return eat('}');
        }
        if (*p != '[') return false;
        p++;
        if (eat(']')) return true;
        uint32_t i = 0;
        do {
            if (i >= a.length || !value(el, at + (size_t)i * el.size)) return false;
            i++;
        } while (eat(','));
        return eat(']');
    }

    bool positional(const Node& t, uint8_t* at) {
        p++;                               // '['
        if (eat(']')) return true;
        size_t i = 0;
        do {
            if (i >= t.members.size()) return false;
            const Member& m = t.members[i++];
            if (!value(L.nodes[m.node], at + m.off)) return false;
        } while (eat(','));
        return eat(']');
    }

    bool union_member(const Node& u, uint8_t* at, const char* k, size_t n) {
        for (size_t i = 0; i < u.members.size(); i++) {
            const Member& m = u.members[i];
            if (m.name.size() == n && memcmp(m.name.data(), k, n) == 0) {
                if (!value(L.nodes[m.node], at)) return false;
                if (u.tag >= 0) at[u.tag] = (uint8_t)i;
                return true;
            }
        }
        return false;
    }

    // key "a" or "a.b.c" into node t: a tuple's member, a union's member, an array's index
    bool keyed(const Node& t, uint8_t* at, const char* k, size_t n) {
        if (t.kind == 'U') return union_member(t, at, k, n);
        if (t.kind == 'A') {
            uint64_t i;
            const Node& el = L.nodes[t.elem];
            return digits_u64(k, k + n, 10, &i) && i < t.length && value(el, at + i * el.size);
        }
        if (t.kind != 'T') return false;
        const char* dot = (const char*)memchr(k, '.', n);
        size_t head = dot ? dot - k : n;
        for (const Member& m : t.members) {
            if (m.name.size() == head && memcmp(m.name.data(), k, head) == 0) {
                const Node& c = L.nodes[m.node];
                return dot ? keyed(c, at + m.off, dot + 1, n - head - 1) : value(c, at + m.off);
            }
        }
        return false;
    }

    bool members(const Node& t, uint8_t* at, char close) {
        if (close ? eat(close) : (ws(), p == e)) return true;
        do {
            const char* k;
            size_t n;
            if (!string(&k, &n) || !eat(':') || !keyed(t, at, k, n)) return false;
        } while (eat(','));
        if (close) return eat(close);
        ws();
        return p == e;
    }
};

// ---- C initialiser lists (v4) -------------------------------------------------

struct CInit {
    const Layout& L;
    const char* p;
    const char* e;

    static bool space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }
    void skip() { while (p < e && (space(*p) || *p == ',')) p++; }   // commas separate nothing more (as psim/typespec.py)

    bool atom(const Node& s, uint8_t* at) {
        skip();
        const char* q = p;
        if (p < e && *p == '\'') {        // 'c', no escapes (else Python's)
            if (e - p < 3 || p[1] == '\\' || p[2] != '\'' || (uint8_t)p[1] >= 0x80) return false;
            p += 3;
            return s.kind == 'S' && store(s, at, Number{true, false, (uint8_t)q[1], 0});
        }
        while (p < e && !space(*p) && *p != '{' && *p != '}' && *p != ',') p++;
        if (s.kind != 'S' || p == q) return false;
        const char* t = p;
        if (t - q == 4 && memcmp(q, "true", 4) == 0) return store(s, at, Number{true, false, 1, 0});
        if (t - q == 5 && memcmp(q, "false", 5) == 0) return store(s, at, Number{true, false, 0, 0});
        while (t > q && strchr("uUlL", t[-1])) t--;
        Number n{true, false, 0, 0};
        const char* d = q;
        if (d < t && (*d == '-' || *d == '+')) n.negative = *d++ == '-';
        if (t - d > 2 && d[0] == '0' && (d[1] == 'x' || d[1] == 'X'))
            return digits_u64(d + 2, t, 16, &n.u) && store(s, at, n);
        if (d < t && (t - d == 1 || *d != '0') && digits_u64(d, t, 10, &n.u)) return store(s, at, n);
        while (t > q && (t[-1] == 'f' || t[-1] == 'F')) t--;
        const char* r = d;                // digits, '.', exponent only
        bool digit = false;
        while (r < t && ((*r >= '0' && *r <= '9') || *r == '.')) digit |= *r++ != '.';
        if (r < t && (*r == 'e' || *r == 'E')) {
            r++;
            if (r < t && (*r == '+' || *r == '-')) r++;
            if (r == t) return false;
            while (r < t && *r >= '0' && *r <= '9') r++;
        }
        n.is_int = false;
        return digit && r == t && decimal_double(q, t, &n.d) && store(s, at, n);
    }

    // the number of items in the list opening at p (just after its '{')
    size_t items() const {
        size_t n = 0;
        int depth = 0;
        bool in_item = false;
        for (const char* q = p; q < e; q++) {
            char c = *q;
            if (c == '\'') return SIZE_MAX;     // char literals: leave to Python
            if (depth == 0 && c == '}') return n;
            if (c == '{') { n += depth == 0; depth++; in_item = false; continue; }
            if (c == '}') { depth--; continue; }
            if (depth) continue;
            if (space(c) || c == ',') { in_item = false; continue; }
            if (!in_item) { n++; in_item = true; }
        }
        return SIZE_MAX;
    }

    bool value(const Node& t, uint8_t* at) {
        skip();
        if (p >= e) return false;
        if (*p != '{') return atom(t, at);
        if (t.kind == 'S') return false;
        p++;
        if (t.kind == 'U') {                  // a list: its one item, or itself, is the first member's
            size_t n = items();
            if (n == SIZE_MAX || n == 0) return false;
            const Node& first = L.nodes[t.members[0].node];
            if (n == 1) {
                if (!value(first, at)) return false;
            } else {
                p--;
                if (!value(first, at)) return false;
                if (t.tag >= 0) at[t.tag] = 0;
                return true;
            }
            if (t.tag >= 0) at[t.tag] = 0;
        } else {
            size_t count = t.kind == 'A' ? t.length : t.members.size();
            for (size_t i = 0;; i++) {
                skip();
                if (p < e && *p == '}') break;
                if (i >= count) return false;
                bool ok = t.kind == 'A' ? value(L.nodes[t.elem], at + i * L.nodes[t.elem].size)
                                        : value(L.nodes[t.members[i].node], at + t.members[i].off);
                if (!ok) return false;
            }
        }
        skip();
        if (p >= e || *p != '}') return false;
        p++;
        return true;
    }

    bool whole(uint8_t* at) {
        skip();
        if (p >= e || *p != '{') return false;     // a bare scalar: Python's error
        if (!value(L.root(), at)) return false;
        while (p < e && space(*p)) p++;
        return p == e;
    }
};

// The value text [p, e) over `block` (holding the default image): true when
// decoded, false to leave it to Python.
inline bool decode(const Layout& L, bool c_syntax, const char* p, const char* e, uint8_t* block) {
    const char* q = p;
    while (q < e && (*q == ' ' || *q == '\n' || *q == '\t' || *q == '\r')) q++;
    if (q == e) return true;                       // no value: the defaults
    if (c_syntax) return CInit{L, p, e}.whole(block);
    Json j{L, p, e};
    return j.members(L.root(), block, 0);
}

}  // namespace pv
