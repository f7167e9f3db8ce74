"""The C instance reader (psim/core/instance_reader.cpp) against the reference
reader (psim/reader_reference.py: the lxml parser target with values packed
by psim/typed.py): byte-identical arrays on every app in tests/apps and on
generated apps covering every kind of value, and the same message and line
for every bad value."""
import gzip

import pytest

from appcases import APPS, BAD
from psim import build
from psim.errors import BadInput
from psim.reader import Source, _c_reader, new_loader, read_graph_type, read_instance
from psim.reader_reference import read_instance_reference

LOADER = build.loader_module()


def snapshot(inst) -> dict:
    """Everything an engine takes from an Instance, the CSR included."""
    lib, ffi = LOADER.lib, LOADER.ffi
    err = ffi.new("int*")
    bad = lib.pl_finish(inst.loader, ffi.NULL, 0, err)
    n, keys = inst.n_devices, inst.n_devices * inst.graph.max_outputs
    raw = (lambda p, size: bytes(ffi.buffer(p, size)) if size else b"")
    return dict(id=inst.id, ids=inst.ids, n_edges=inst.n_edges, finish=(bad, err[0]),
                types=raw(lib.pl_dev_types(inst.loader), 2 * n),
                out_off=raw(lib.pl_out_off(inst.loader), 4 * (keys + 1)) if bad < 0 else None,
                edges=raw(lib.pl_edges(inst.loader), 12 * inst.n_edges) if bad < 0 else None,
                props=[bytes(a) for a in inst.props], state=[bytes(a) for a in inst.state],
                eprops=[bytes(a) for a in inst.eprops], estate=[bytes(a) for a in inst.estate],
                graph_props=bytes(inst.graph_props), halt=inst.halt, externals=inst.externals)


def read(xml, reader) -> dict | str:
    src = Source(xml)
    try:
        graph, ns = read_graph_type(src)
        return snapshot(reader(src, graph, ns, LOADER.lib, LOADER.ffi))
    except BadInput as e:
        return str(e)


def same_as_reference(xml) -> dict | str:
    c, ref = read(xml, read_instance), read(xml, read_instance_reference)
    assert c == ref
    return c


@pytest.mark.parametrize("app", APPS + BAD, ids=lambda p: p.stem)
def test_apps_read_as_the_reference_reads_them(app):
    same_as_reference(app)


# ---- generated apps: every kind of value ----------------------------------------------

V3_TYPES = """
  <Scalar name="i8" type="int8_t"/><Scalar name="i16" type="int16_t"/>
  <Scalar name="i32" type="int32_t" default="-17"/><Scalar name="i64" type="int64_t"/>
  <Scalar name="u8" type="uint8_t"/><Scalar name="u16" type="uint16_t"/>
  <Scalar name="u32" type="uint32_t"/><Scalar name="u64" type="uint64_t"/>
  <Scalar name="c" type="char"/><Scalar name="f" type="float"/><Scalar name="d" type="double"/>
  <Scalar name="h" type="half"/><Scalar name="b" type="bool"/>
  <Array name="arr" length="4" type="int32_t"/>
  <Array name="txt" length="8" type="char"/>
  <Array name="pts" length="3"><Tuple name="_"><Scalar name="a" type="uint8_t"/>
    <Scalar name="b" type="int32_t" default="5"/></Tuple></Array>
  <Tuple name="nest"><Scalar name="k" type="uint8_t" default="9"/>
    <Tuple name="inner"><Scalar name="m" type="int16_t"/><Array name="v" length="2" type="float"/></Tuple></Tuple>
  <Union name="u"><Scalar name="asInt" type="int32_t"/><Scalar name="asFloat" type="float"/>
    <Tuple name="asPair"><Scalar name="lo" type="uint8_t"/><Scalar name="hi" type="uint8_t"/></Tuple></Union>
"""
V4_TYPES = """<![CDATA[
  int8_t i8; int16_t i16; int32_t i32; int64_t i64; uint8_t u8; uint16_t u16; uint32_t u32; uint64_t u64;
  char c; float f; double d; half h; bool b;
  int32_t arr[4]; char txt[8];
  struct { uint8_t a; int32_t b; } pts[3];
  struct { uint8_t k; struct { int16_t m; float v[2]; } inner; } nest;
  union { int32_t asInt; float asFloat; } u;
]]>"""
EDGE_V3 = ('<Properties><Scalar name="w" type="float"/><Array name="ks" length="2" type="uint16_t"/></Properties>'
           '<State><Scalar name="n" type="uint32_t" default="4"/></State>')
EDGE_V4 = "<Properties><![CDATA[ float w; uint16_t ks[2]; ]]></Properties><State><![CDATA[ uint32_t n; ]]></State>"

GRAPH = """<?xml version="1.0"?>
<Graphs xmlns="https://poets-project.org/schemas/virtual-graph-schema-v{v}">
  <GraphType id="kinds">
    <MessageTypes><MessageType id="m"><Message>{msg}</Message></MessageType></MessageTypes>
    <DeviceTypes>
      <DeviceType id="d">
        <Properties>{types}</Properties>
        <State>{types}</State>
        <ReadyToSend><![CDATA[ *readyToSend = 0; ]]></ReadyToSend>
        <InputPin name="in" messageTypeId="m">{edge}<OnReceive><![CDATA[ ]]></OnReceive></InputPin>
        <InputPin name="plain" messageTypeId="m"><OnReceive><![CDATA[ ]]></OnReceive></InputPin>
        <OutputPin name="out" messageTypeId="m"><OnSend><![CDATA[ ]]></OnSend></OutputPin>
      </DeviceType>
    </DeviceTypes>
  </GraphType>
  <GraphInstance id="g" graphTypeId="kinds">
    <DeviceInstances>
{devices}
    </DeviceInstances>
    <EdgeInstances>
{edges}
    </EdgeInstances>
  </GraphInstance>
</Graphs>
"""

# values C decodes itself, in each syntax
V3_VALUES = [
    "",
    '"i8": -128, "i16": 32767, "i32": -5, "i64": -9223372036854775808, "u8": 255, "u16": 1, '
    '"u32": 4294967295, "u64": 18446744073709551615',
    '"c": "A", "f": 0.1, "d": -1e-300, "h": 0.1, "b": true',
    '"h": 65504, "f": 3.4e38, "b": 7, "c": 65',
    '"h": 1e-7, "f": 1e-45', '"h": 0.000030517578125, "d": 1.5E+2', '"h": 2.0009765625, "u64": 2.5e3',
    '"h": -2.001953125, "i32": 3.0, "u8": 1e2',
    '"arr": [1, 2], "txt": "hi", "pts": [{"a": 1}, {"b": -2}]',
    '"arr": {"3": 7, "0": -1}, "arr.1": 5, "txt": "abcdefgh"',
    '"nest": {"inner": {"v": [0.5, -0.25]}}, "nest.k": 3, "nest.inner.m": -7',
    '"u.asFloat": 2.25', '"u": {"asPair": {"lo": 1, "hi": 2}}', '"u.asPair": {"hi": 9}',
    '"pts": {"2": {"a": 3}}, "pts.1": {"b": 4}', '"pts": [[1, 2], [3]], "nest": [1, [2, [3, 4]]]',
    '"d": -0.0, "f": -0, "i8": -0, "b": false', '"d": 5e-324, "f": 1.401298464324817e-45, "h": 6e-8',
    '\n  "i16" :  -2 ,\n\t"u16":3  ',
]
V4_VALUES = [
    "", "{}", "  {1, 2, 3}  ",
    "{-128, 32767, -5, -9223372036854775808LL, 255u, 1U, 4294967295UL, 18446744073709551615ULL}",
    "{0x7f, -0x10, 0X1F, 017, 00, +3, 0, 0, 'A', 1.5f, -2.5e-3, true, false}",
    "{0,0,0,0,0,0,0,0,'z',0.1F,2.,1,1,{1,2},{104,105},{{1,2},{3}},{3,{-7,{0.5f,-0.25F}}},{42}}",
    "{0,0,0,0,0,0,0,0, 0, 3.4e38f, 1e-300, 0.1}",
    "{0,0,0,0,0,0,0,0, 0, 1, -0., 65504}",
    "{1 2,, 3}", "{0,0,0,0,0,0,0,0,0, +1.5f, 4.9e-324, -0x8}", "{0,0,0,0,0,0,0,0,0,0,0,0,0,{},{},{{},{9}},{},{7}}",
]
# values C leaves to Python, which packs them
V3_LEFT = ['"txt": "a\\"b"', '"u": [3]', '"u64": 1e19, "u8": 1', '"pts": {" 1": {"a": 1}}']
V4_LEFT = ["{0, 1_000}", "{'\\n'}", "{0b101, 0o17}", "{0,0,0,0,0,0,0,0,0, .5e1, 1e400}"]
# bad values: the same message and line as the reference gives
BAD_V3 = ['"i8": 128', '"u8": -1', '"c": "AB"', '"txt": "\u00e9"', '"nope": 1', '"u.asPair.hi": 9',
          '"arr": [1, 2, 3, 4, 5]', '"arr": {"4": 1}', '"i32": 1.5', '"b": null', '"i8": 1,', '"i8": 01',
          '"h": 65520', '"f": 1e39', '"u": {"asInt": 1, "asFloat": 2}', '"txt": 5', '"u64": 18446744073709551616']
BAD_V4 = ["{300}", "{1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19}", "5", "{1,", "{x}", "{1}}", "{1} 2",
          "{0,0,0,0,0,0,0,0,0,0,0,0,0,{1,2,3,4,5}}", "{-1, -1, -1, -1, -1}", "{0.5}"]


def attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def elem(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")


def app(path, version: int, dev_values: list[str], edge_values: list[str], multiline: bool = False) -> str:
    """A generated app: device i has P = S = dev_values[i], edge i (a ring)
    P = edge_values[i]; v4 values in attributes, v2/v3 in children."""
    n = max(len(dev_values), 2)
    devs, edges = [], []
    sep = "\n        " if multiline else " "
    for i in range(n):
        v = dev_values[i] if i < len(dev_values) else ""
        if version >= 4:
            devs.append(f'      <DevI id="n{i}"{sep}type="d"{sep}P="{attr(v)}" S="{attr(v)}"/>')
        else:
            devs.append(f'      <DevI id="n{i}"{sep}type="d"><P>{elem(v)}</P><S>{elem(v)}</S></DevI>')
    for i, v in enumerate(edge_values or [""]):
        p = f"n{(i + 1) % n}:in-n{i % n}:out"
        edges.append(f'      <EdgeI path="{p}" P="{attr(v)}" S="{{{i}}}"/>' if version >= 4 else
                     f'      <EdgeI path="{p}"><P>{elem(v)}</P><S>"n": {i}</S></EdgeI>')
    text = GRAPH.format(v=version, msg="" if version < 4 else "<![CDATA[ ]]>", types=V4_TYPES if version >= 4 else V3_TYPES,
                        edge=EDGE_V4 if version >= 4 else EDGE_V3, devices="\n".join(devs), edges="\n".join(edges))
    path.write_text(text)
    return path


EDGES = {3: ["", '"w": 0.5, "ks": [1, 2]', '"ks": {"1": 9}', '"ks.0": 3'], 4: ["", "{0.5f, {1, 2}}", "{1e-3}"]}


@pytest.mark.parametrize("version", [3, 4])
def test_every_value_kind_packs_as_python_packs_it(tmp_path, version):
    values = V4_VALUES if version >= 4 else V3_VALUES
    got = same_as_reference(app(tmp_path / "kinds.xml", version, values, EDGES[version]))
    assert isinstance(got, dict), got
    size = len(got["props"][0]) // len(values)
    blocks = {got["props"][0][i * size:(i + 1) * size] for i in range(len(values))}
    assert len(blocks) >= len(values) - 2         # the values did land (only the defaults repeat)
    assert left_to_python(tmp_path / "kinds.xml") == 0


@pytest.mark.parametrize("version", [3, 4])
def test_values_c_leaves_are_packed_by_python(tmp_path, version):
    values = V4_LEFT if version >= 4 else V3_LEFT
    got = same_as_reference(app(tmp_path / "left.xml", version, values, []))
    assert isinstance(got, dict), got
    assert left_to_python(tmp_path / "left.xml") == 2 * len(values)     # P and S of each


def left_to_python(path) -> int:
    """How many values the C reader left to Python in reading `path`."""
    lib, ffi = LOADER.lib, LOADER.ffi
    src = Source(path)
    graph, ns = read_graph_type(src)
    loader = new_loader(graph, lib, ffi)
    reader = _c_reader(graph, ns, loader, lib)
    try:
        data = path.read_bytes()
        assert lib.pr_feed(reader, data, len(data), 1) == 0
        return lib.pr_n_left(reader)
    finally:
        lib.pr_destroy(reader)


BAD_EDGE = {3: ['"w": "x"', '"ks": [1, 2, 3]', '"ks.5": 1', '"nope": 1'], 4: ["{1, {1, 2, 3}}", "{x}", "{1, 2, 3}"]}


@pytest.mark.parametrize("case", [(3, v) for v in BAD_V3] + [(4, v) for v in BAD_V4], ids=repr)
def test_bad_device_values_are_worded_and_placed_as_before(tmp_path, case):
    version, value = case
    got = same_as_reference(app(tmp_path / "bad.xml", version, ["", value], [], multiline=True))
    assert isinstance(got, str) and "bad.xml:" in got and "'n1'" in got, got


@pytest.mark.parametrize("case", [(v, e) for v in BAD_EDGE for e in BAD_EDGE[v]], ids=repr)
def test_bad_edge_values_are_worded_and_placed_as_before(tmp_path, case):
    version, value = case
    got = same_as_reference(app(tmp_path / "bad.xml", version, ["", ""], ["", value]))
    assert isinstance(got, str) and "bad.xml:" in got and "n0:in-n1:out" in got, got


STRUCTURE = {   # text to put in place of the edges, and what the message says
    "no path": ('<EdgeI/>', "without a path attribute"),
    "sendIndex": ('<EdgeI path="n1:in-n0:out" sendIndex="x1"/>', "sendIndex 'x1' is not an integer"),
    "values on a plain pin": ('<EdgeI path="n1:plain-n0:out"><P>"w": 1</P></EdgeI>', "no edge properties or state"),
    "malformed": ('<EdgeI path="n1:in-n0:out">\n  </Edge>', "malformed XML"),
}
DEVICES = {     # devices to add, and what the message says
    "unknown type": ('<DevI id="z"\n type="q"/>', "unknown device type 'q'"),
    "duplicate": ('<DevI id="n0"\n type="d"/>', "duplicate device id 'n0'"),
    "external": ('<ExtI id="z" type="d"/>', "is not an ExternalType"),
    "no id": ('<DevI type="d"/>', "<DevI> without an id attribute"),
    "no ExtI id": ('<ExtI type="d"/>', "<ExtI> without an id attribute"),
}


@pytest.mark.parametrize("case", sorted(STRUCTURE) + sorted(DEVICES))
def test_structural_errors_are_worded_and_placed_as_before(tmp_path, case):
    path = app(tmp_path / "s.xml", 3, ["", ""], [])
    if case in STRUCTURE:
        (text, part), old = STRUCTURE[case], '<EdgeI path="n1:in-n0:out"><P></P><S>"n": 0</S></EdgeI>'
    else:
        (text, part), old = DEVICES[case], "    </DeviceInstances>"
        text += "\n" + old
    path.write_text(path.read_text().replace(old, text))
    if case in ("no id", "no ExtI id"):   # the reference reader crashed on these: the C reader's own message
        got = read(path, read_instance)
    else:
        got = same_as_reference(path)
    assert isinstance(got, str) and part in got and "s.xml:" in got, got


def test_gzip_and_xml_text_read_as_the_file(tmp_path):
    path = app(tmp_path / "kinds.xml", 3, V3_VALUES, EDGES[3])
    gz = tmp_path / "kinds.xml.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert read(gz, read_instance) == read(path, read_instance) == read(path.read_text(), read_instance)
