"""Typed data (v3): loading of every scalar type, arrays, tuples, unions,
TypeDefs, defaults and graph properties, and the packed C layout.

Holders h0 (nearly all defaults), h1 (extreme values) and h2 copy/compute
from their properties into their state in OnInit; each sends one `pack`
message to sink0, which files the fields under rx[who].

Expected values by hand:
- graph properties: scale 3 (instance), offset 100 (default attribute),
  weights [5, -7, 11, 0]; gsum = scale*id + offset + weights[id]
  -> h0 105, h1 96, h2 117.
- holder properties are packed: id 4, i8 1, i16 2, i32 4, i64 8, u8 1,
  u16 2, u32 4, u64 8, c 1, f 4, d 8, dflt 4, dense 5*4, sparse 6*2,
  pts 3*(1+4), nest 1+(2+2*4), u max(4,4,2)+1, where 2+2 -> 118 bytes,
  u at offset 109, its tag byte after the largest member at 113, where at
  114. Graph properties 4+4+4 = 12 bytes.
  Holder state 135 bytes (ru is max(4, 8) + 1 = 9). Message pack:
  1+1+8+8+4+(4+1)+6+4 = 37 bytes.
- union tags are 0-based in declaration order (asInt 0, asFloat 1, asPair 2).
"""

expect_status = "idle"   # no handler_exit: the run ends quiescent

BIG_NEG = -9007199254740993  # 2**53 + 1 negated: not exact in a double
UINT64_MAX = 18446744073709551615
INT64_MAX = 9223372036854775807

EXPECTED_HOLDERS = {
    "h0": {
        "i8c": 0, "i16c": 0, "i32c": 0, "i64c": 0,
        "u8c": 0, "u16c": 0, "u32c": 0, "u64c": 0,
        "cc": 0, "fc": 0.0, "dc": 1.0, "dflt_c": -17,
        "sum_dense": 0, "sum_sparse": 0, "sum_pts": 0,
        "nest_total": 9 - 5 + 0,          # nest Default: k 9, m -5, arr zero
        "utag": 0, "uval": 0,
        "where_prod": 4 * -6,             # point_t Default: x 4, y -6
        "gsum": 105,
        "hist": [7, 8, 0, 0], "hsum": 15,  # Array Default [7, 8]
        "level": 5, "level2": 10,          # default="5"
        "ru": {"asInt": 1},
        "sent": 1,
    },
    "h1": {
        "i8c": -128, "i16c": -32768, "i32c": -2147483648,
        "i64c": BIG_NEG,
        "u8c": 255, "u16c": 65535, "u32c": 4294967295, "u64c": UINT64_MAX,
        "cc": 65, "fc": 0.75, "dc": -1233.5, "dflt_c": 5,
        "sum_dense": 1 + 2 + 3,
        "sum_sparse": 10 + 40,
        "sum_pts": 1 * -10 + 2 * 20 + 3 * 300,   # 930
        "nest_total": 1 + 2 + 3 + 4,
        "utag": 1, "uval": 9,                    # (int)(2.25 * 4)
        "where_prod": 7 * 8,
        "gsum": 96,
        "hist": [1, 2, 3, 4], "hsum": 10,
        "level": 5, "level2": 10,
        "ru": {"asDouble": 4.5},
        "sent": 1,
    },
    "h2": {
        "i8c": 127, "i16c": 32767, "i32c": 2147483647, "i64c": INT64_MAX,
        "u8c": 1, "u16c": 2, "u32c": 3, "u64c": 4,
        "cc": 122, "fc": -1.0, "dc": 1.125, "dflt_c": -17,
        "sum_dense": 150,
        "sum_sparse": 65536,                     # 65535 + 1, summed in uint32
        "sum_pts": 255 * -1,                     # sparse array of tuples
        "nest_total": 9 - 5,
        "utag": 2, "uval": 3 + 256 * 2,
        "where_prod": -24,
        "gsum": 117,
        "hist": [7, 8, 0, 0], "hsum": 15,
        "level": -300, "level2": -600,
        "ru": {"asInt": 516},
        "sent": 1,
    },
}

LAYOUT = {"props_size": 118, "gprops_size": 12, "state_size": 135,
          "off_u": 109, "off_where": 114, "off_utag": 113}

EXPECTED_RX = [
    {"i8": 0, "u64": 0, "d": 0.0, "pt": {"x": 4, "y": -6}, "mtag": 0,
     "mval": 0, "asum": 0, "gsum": 105, "msize": 37},
    {"i8": -128, "u64": UINT64_MAX, "d": -1234.5, "pt": {"x": 7, "y": 8},
     "mtag": 1, "mval": 225, "asum": 6, "gsum": 96, "msize": 37},
    {"i8": 127, "u64": 4, "d": 0.125, "pt": {"x": 4, "y": -6}, "mtag": 0,
     "mval": 515, "asum": 60, "gsum": 117, "msize": 37},
]


def _same(got, want):
    # exact comparison, but a float field may come back as float or int
    if isinstance(want, float) or isinstance(got, float):
        return isinstance(got, (int, float)) and float(got) == float(want)
    if isinstance(want, dict):
        return (isinstance(got, dict) and sorted(got) == sorted(want)
                and all(_same(got[k], want[k]) for k in want))
    if isinstance(want, list):
        return (isinstance(got, (list, tuple)) and len(got) == len(want)
                and all(_same(g, w) for g, w in zip(got, want)))
    return type(got) is not bool and got == want


def check_status(result):
    assert result["status"] == "idle", (result["status"], result.get("error"))
    assert result["metrics"]["Exit code"] == 0
    assert result["metrics"]["Delivered messages"] == 3


def check_holder_values(result):
    for dev, want in EXPECTED_HOLDERS.items():
        state = result["states"][dev]
        for field, value in want.items():
            assert field in state, (dev, field, sorted(state))
            assert _same(state[field], value), (dev, field, state[field], value)


def check_layout(result):
    for dev in EXPECTED_HOLDERS:
        state = result["states"][dev]
        for field, value in LAYOUT.items():
            assert state[field] == value, (dev, field, state[field], value)


def check_sink(result):
    state = result["states"]["sink0"]
    assert state["count"] == 3, state["count"]
    assert _same(state["rx"], EXPECTED_RX), state["rx"]
