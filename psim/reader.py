"""Reading graph-schema files (v2, v3, v4, optionally gzipped).

Two passes over the file, both streaming:
1. lxml iterparse up to the end of <GraphType>: a small tree with line
   numbers, read into the model (graphtype.py);
2. the C instance reader (core/instance_reader.cpp: libxml2's SAX2 push
   parser), fed the file in 1 MB blocks: device ids and edge paths go to the
   C loader (core/loader.cpp) element by element, P and S values are decoded
   in C straight into flat per-type arrays, laid out as typed.py describes
   them (Layout.description).  No Python runs per device or edge, and memory
   stays proportional to those arrays, not to the file.

The C reader stops at the first problem and says what, where (the line lxml
would give) and with what text; Python words the message.  A value the C
decoder is not certain of is left to Python's packer (typed.py), which gives
it its bytes or its error, so messages are the ones psim always gave.
"""
from __future__ import annotations

import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

from lxml import etree

from .errors import BadInput, Unsupported
from .graphtype import GraphTypeReader
from .model import GraphType
from .typespec import c_value, json_value

NAMESPACES = {
    "https://poets-project.org/schemas/virtual-graph-schema-v2": 2,
    "https://poets-project.org/schemas/virtual-graph-schema-v3": 3,
    "https://poets-project.org/schemas/virtual-graph-schema-v4": 4,
}
BLOCK = 1 << 20          # bytes fed to the C reader at once
HALT = "__halt__"


class Source:
    """A file path or XML text, and how to name it in messages."""

    def __init__(self, xml: str | Path):
        text = str(xml)
        self.data: bytes | None = None
        # XML text, or (a file's text that is not XML, e.g. a worker's copy
        # of what a client sent) lines no path has: the parse names the fault
        if isinstance(xml, str) and (text.lstrip("\ufeff \t\r\n").startswith("<") or "\n" in text):
            self.data = text.encode()
            self.name = "<string>"
            self.path = None
        else:
            self.path = Path(text)
            self.name = self.path.name
            try:
                found = self.path.is_file()
            except OSError as e:          # e.g. a name too long for a path
                raise BadInput(f"{text[:80]}: {e.strerror}") from None
            if not found:
                raise BadInput(f"{text}: no such file")

    @property
    def size(self) -> int | None:
        """The bytes pass 2 feeds the C reader, when known before (not for a .gz)."""
        if self.data is not None:
            return len(self.data)
        return None if self.path.suffix == ".gz" else self.path.stat().st_size

    def open(self):
        if self.data is not None:
            return io.BytesIO(self.data)
        if self.path.suffix == ".gz":
            return gzip.open(self.path, "rb")
        return open(self.path, "rb")

    def bad(self, detail: str, line: int | None = None) -> BadInput:
        return BadInput(detail, self.name, line)

    def syntax(self, e: etree.XMLSyntaxError) -> BadInput:
        return self.bad(f"malformed XML: {e.msg}", e.lineno)


def read_graph_type(src: Source) -> tuple[GraphType, str]:
    """Pass 1: the GraphType, and the namespace the file uses."""
    ns = None
    with src.open() as f:
        try:
            for event, el in etree.iterparse(f, events=("start", "end"), huge_tree=True):
                if ns is None:
                    ns = _namespace(src, el)
                local = el.tag[len(ns):] if isinstance(el.tag, str) else ""
                if event == "start" and local == "GraphInstance":
                    raise src.bad("<GraphInstance> comes before its <GraphType>", el.sourceline)
                if event == "end" and local == "GraphType":
                    try:
                        return GraphTypeReader(el, ns, NAMESPACES[ns[1:-1]], src.name).read(el), ns
                    except BadInput as e:
                        raise e.located(src.name) from None
                if event == "end" and local in ("GraphTypeReference", "GraphInstanceReference"):
                    raise Unsupported(f"<{local}> (references to other files) is not supported",
                                      src.name, el.sourceline)
        except etree.XMLSyntaxError as e:
            raise src.syntax(e) from None
    raise src.bad("no <GraphType> in file")


def _namespace(src: Source, root) -> str:
    ns = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    if ns not in NAMESPACES:
        raise src.bad(f"<{root.tag.split('}')[-1]}> has namespace '{ns}', not a graph-schema v2, v3 or v4 "
                      "namespace", root.sourceline)
    return "{" + ns + "}"


@dataclass
class Instance:
    """A graph instance as flat arrays, ready for an engine."""
    graph: GraphType
    source: Source
    id: str
    ns: str                               # "{namespace}" of the file's elements
    loader: object                        # the C loader holding ids, types and edges
    ids: list[str] = field(default_factory=list)
    graph_props: bytes = b""
    props: list[bytearray] = field(default_factory=list)     # per device type
    state: list[bytearray] = field(default_factory=list)
    eprops: list[bytearray] = field(default_factory=list)    # per edge kind
    estate: list[bytearray] = field(default_factory=list)
    halt: int | None = None
    externals: list[int] = field(default_factory=list)   # ExtI devices but __halt__
    n_edges: int = 0

    @property
    def n_devices(self) -> int:
        return len(self.ids)



def unserved_externals(inst: Instance, local: Callable[[int], bool]) -> None:
    """An engine that runs handlers in C cannot serve an external device:
    the first one among its devices (`local`) is refused, naming its line."""
    for dev in inst.externals:
        if local(dev):
            did = inst.ids[dev]
            raise Unsupported(f"external device '{did}' needs an application engine to serve it: "
                              "externals=engine in pcli.run or psim(), or psim --external module:factory "
                              "(docs/engines.md)", inst.source.name,
                              find_line(inst.source, inst.ns + "ExtI", lambda el: el.get("id") == did))


def find_line(src: Source, tag: str, match: Callable, occurrence: int = 1) -> int | None:
    """The line of the n-th element `tag` that `match`es (error path only)."""
    seen = 0
    with src.open() as f:
        try:
            for _, el in etree.iterparse(f, events=("start",), tag=tag, huge_tree=True):
                if match(el):
                    seen += 1
                    if seen == occurrence:
                        return el.sourceline
        except etree.XMLSyntaxError:
            pass
    return None


def _pin_table(g: GraphType) -> str:
    rows = []
    for d in g.devices.values():     # supervisor pins are left out: no edge may name them
        rows += [f"I {d.index} {p.index} {p.message.index} {p.kind} {p.name}" for p in d.inputs if not p.supervisor]
        rows += [f"O {d.index} {p.index} {p.message.index} {int(p.indexed)} {p.name}" for p in d.outputs
                 if not p.supervisor]
    return "\n".join(rows) + "\n"


def _edge_error(code: int, path: str, g: GraphType, lib, loader) -> str:
    """The message for the loader's PL_E_* `code` on edge `path`."""
    dst, _, src = path.partition("-")
    dst_dev, _, dst_pin = dst.partition(":")
    src_dev, _, src_pin = src.partition(":")
    types = list(g.devices.values())

    def type_of(dev: str) -> str:
        index = lib.pl_find(loader, dev.encode(), len(dev.encode()))
        return types[lib.pl_dev_types(loader)[index]].id

    if code == lib.PL_E_PATH:
        return f"edge path '{path}' is not of the form 'dstDevice:dstPin-srcDevice:srcPin'"
    if code == lib.PL_E_DST_DEVICE:
        return f"edge '{path}' names missing device '{dst_dev}'"
    if code == lib.PL_E_SRC_DEVICE:
        return f"edge '{path}' names missing device '{src_dev}'"
    if code == lib.PL_E_DST_PIN:
        return f"edge '{path}': device type '{type_of(dst_dev)}' has no input pin '{dst_pin}'"
    if code == lib.PL_E_SRC_PIN:
        return f"edge '{path}': device type '{type_of(src_dev)}' has no output pin '{src_pin}'"
    if code == lib.PL_E_MESSAGE:
        d, s = g.devices[type_of(dst_dev)].input(dst_pin), g.devices[type_of(src_dev)].output(src_pin)
        return (f"edge '{path}' joins output pin '{src_pin}' (message type '{s.message.id}') to input pin "
                f"'{dst_pin}' (message type '{d.message.id}')")
    if code == lib.PL_E_SEND_INDEX_BROADCAST:
        return f"edge '{path}' has a sendIndex, but output pin '{src_pin}' is not indexed"
    if code == lib.PL_E_SEND_INDEX_RANGE:
        return f"edge '{path}': sendIndex is not below the number of edges of '{src_dev}:{src_pin}'"
    return f"edge '{path}': sendIndex is used twice on '{src_dev}:{src_pin}'"



def pack_value(layout, text: str | None, v4: bool, what: str | None = None) -> bytes:
    """Python's packing of one P or S text (v4: a C initialiser list, else
    JSON members) over the layout's defaults.  Raises BadInput, its detail
    prefixed by `what`."""
    if text is None or not text.strip():
        return layout.default
    try:
        return layout.pack(c_value(text) if v4 else json_value(text))
    except BadInput as e:
        raise BadInput(f"{what}: {e.detail}" if what else e.detail) from None


def new_loader(graph: GraphType, lib, ffi):
    """An empty C loader for instances of `graph`."""
    return ffi.gc(lib.pl_create(_pin_table(graph).encode(), len(graph.devices), graph.max_outputs,
                                len(graph.edge_pins)), lib.pl_destroy)


OnBlock = Callable[[int, int, int], None]     # (bytes fed so far, devices read, edges read)


def read_instance(src: Source, graph: GraphType, ns: str, lib, ffi, on_block: OnBlock | None = None) -> Instance:
    """Pass 2: the instance into flat arrays and the C loader; on_block
    after every block fed (for progress: once a MB, no cost per element)."""
    loader = new_loader(graph, lib, ffi)
    reader = _c_reader(graph, ns, loader, lib)
    block = bytearray(BLOCK)          # one buffer, refilled: no fresh pages per block
    view = ffi.from_buffer(block)
    fed = 0
    try:
        with src.open() as f:
            while True:
                n = f.readinto(block)
                if lib.pr_feed(reader, view, n, not n) or not n:
                    break
                fed += n
                if on_block:
                    on_block(fed, lib.pl_n_devices(loader), lib.pl_n_edges(loader))
        return _Result(src, graph, ns, loader, reader, lib, ffi).instance()
    finally:
        lib.pr_destroy(reader)


def _c_reader(graph: GraphType, ns: str, loader, lib):
    """A C reader for instances of `graph`, told its device types and every
    value layout (typed.py Layout.description) once."""
    types = list(graph.devices.values())
    reader = lib.pr_create(loader, ns[1:-1].encode(), graph.version, graph.id.encode(),
                           "".join(d.id + "\n" for d in types).encode(), bytes(d.external for d in types))
    layouts = [(lib.PR_DEVICE_P, d.index, d.props) for d in types] + [(lib.PR_DEVICE_S, d.index, d.state) for d in types]
    layouts += [(lib.PR_EDGE_P, p.kind, p.props) for p in graph.edge_pins]
    layouts += [(lib.PR_EDGE_S, p.kind, p.state) for p in graph.edge_pins]
    for kind, index, layout in layouts:
        if not lib.pr_layout(reader, kind, index, layout.description().encode(), layout.default, layout.size):
            lib.pr_destroy(reader)
            raise RuntimeError(f"the C reader refused the description of {layout.ctype}")   # a bug of ours
    return reader


class _Result:
    """What the C reader read: its problem worded, its arrays as an Instance."""

    def __init__(self, src: Source, graph: GraphType, ns: str, loader, reader, lib, ffi):
        self.src, self.g, self.ns, self.loader, self.reader, self.lib, self.ffi = src, graph, ns, loader, reader, lib, ffi

    def text(self, ptr, size: int) -> str:
        return bytes(self.ffi.buffer(ptr, size)).decode()

    def graph_text(self, which: int) -> str | None:
        size = self.ffi.new("size_t*")
        ptr = self.lib.pr_graph_text(self.reader, which, size)
        return None if ptr == self.ffi.NULL else self.text(ptr, size[0])

    def instance(self) -> Instance:
        lib, ffi = self.lib, self.ffi
        left = [self.left_value(i) for i in range(lib.pr_n_left(self.reader))]   # before the problem: file order
        problem = ffi.new("pr_problem*")
        lib.pr_problem_of(self.reader, problem)
        if problem.code:
            raise self.problem(problem)
        gid = self.graph_text(0) or ""
        size = ffi.new("size_t*")
        ids_blob = lib.pr_ids(self.reader, size)
        inst = Instance(self.g, self.src, gid, self.ns, self.loader, ids=self.text(ids_blob, size[0]).split("\0")[:-1],
                        n_edges=lib.pl_n_edges(self.loader))
        if not inst.id and not inst.ids:
            raise self.src.bad("no <GraphInstance> in file")
        inst.props, inst.state = self.arrays(lib.PR_DEVICE_P, len(self.g.devices)), self.arrays(lib.PR_DEVICE_S, len(self.g.devices))
        inst.eprops, inst.estate = self.arrays(lib.PR_EDGE_P, len(self.g.edge_pins)), self.arrays(lib.PR_EDGE_S, len(self.g.edge_pins))
        for kind, index, slot, packed in left:
            arrays = (inst.props, inst.state, inst.eprops, inst.estate)[kind]
            arrays[index][slot * len(packed):(slot + 1) * len(packed)] = packed
        halt = lib.pr_halt(self.reader)
        inst.halt = None if halt < 0 else halt
        n_ext = lib.pr_n_externals(self.reader)
        inst.externals = list(ffi.unpack(lib.pr_externals(self.reader), n_ext)) if n_ext else []
        inst.graph_props = self.graph_props()
        return inst

    def arrays(self, kind: int, count: int) -> list[bytearray]:
        size = self.ffi.new("size_t*")
        out = []
        for index in range(count):
            ptr = self.lib.pr_values(self.reader, kind, index, size)
            out.append(bytearray(self.ffi.buffer(ptr, size[0])))
        return out

    def graph_props(self) -> bytes:
        if self.g.version >= 4:
            text = self.graph_text(3)
            return pack_value(self.g.props, text, True, "graph properties") if text else self.g.props.default
        text = self.graph_text(2)
        return self.g.props.default if text is None else pack_value(self.g.props, text, False, "graph properties")

    def left_value(self, i: int) -> tuple[int, int, int, bytes]:
        """A value the C decoder left: packed by Python, or its error."""
        lib = self.lib
        v = self.ffi.new("pr_problem*")
        lib.pr_left(self.reader, i, v)
        owner, text = self.text(v.a, v.a_len), self.text(v.b, v.b_len)
        device = v.code in (lib.PR_DEVICE_P, lib.PR_DEVICE_S)
        layout = self.layout(v.code, v.index)
        try:
            return v.code, v.index, v.slot, pack_value(layout, text, self.g.version >= 4)
        except BadInput as e:
            raise self.src.bad(f"{'device' if device else 'edge'} '{owner}': {e.detail}", v.line) from None

    def layout(self, kind: int, index: int):
        lib = self.lib
        if kind in (lib.PR_DEVICE_P, lib.PR_DEVICE_S):
            d = list(self.g.devices.values())[index]
            return d.props if kind == lib.PR_DEVICE_P else d.state
        pin = self.g.edge_pins[index]
        return pin.props if kind == lib.PR_EDGE_P else pin.state

    def problem(self, p) -> BadInput:
        lib, line = self.lib, p.line
        a = self.text(p.a, p.a_len)
        b = self.text(p.b, p.b_len) if p.b_present else None
        code = p.code
        if code == lib.PR_E_XML:
            return _lxml_syntax(self.src) or self.src.bad(f"malformed XML: {a.strip()}", line)
        if code == lib.PR_E_TWO_INSTANCES:
            return self.src.bad("more than one <GraphInstance>: give one per file")
        if code == lib.PR_E_GRAPH_TYPE:
            return self.src.bad(f"<GraphInstance id='{self.graph_text(0) or ''}'> has graphTypeId '{self.graph_text(1)}', "
                                f"but the graph type is '{self.g.id}'", line)
        messages = {
            lib.PR_E_UNKNOWN_TYPE: lambda: f"device '{a}': unknown device type '{b}'",
            lib.PR_E_NOT_EXTERNAL: lambda: f"device '{a}': type '{b}' is not an ExternalType",
            lib.PR_E_EXTERNAL: lambda: f"device '{a}': type '{b}' is an ExternalType: use <ExtI>",
            lib.PR_E_DUPLICATE_ID: lambda: f"duplicate device id '{a}'",
            lib.PR_E_NO_ID: lambda: f"<{'ExtI' if p.detail else 'DevI'}> without an id attribute",
            lib.PR_E_NO_PATH: lambda: "<EdgeI> without a path attribute",
            lib.PR_E_SEND_INDEX: lambda: f"edge '{a}': sendIndex '{b}' is not an integer",
            lib.PR_E_EDGE: lambda: _edge_error(p.detail, a, self.g, lib, self.loader),
            lib.PR_E_EDGE_VALUES: lambda: f"edge '{a}' has values, but its input pin has no edge properties or state",
        }
        return self.src.bad(messages[code](), line)


def _lxml_syntax(src: Source) -> BadInput | None:
    """lxml's wording of a malformed file (error path only): the parser is
    the same libxml2, so it fails at the same place, but lxml words it."""
    parser = etree.XMLParser(target=SimpleNamespace(close=lambda: None), huge_tree=True)
    with src.open() as f:
        try:
            while block := f.read(BLOCK):
                parser.feed(block)
            parser.close()
        except etree.XMLSyntaxError as e:
            return src.syntax(e)
    return None
