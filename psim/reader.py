"""Reading graph-schema files (v2, v3, v4, optionally gzipped).

Two passes over the file, both streaming:
1. lxml iterparse up to the end of <GraphType>: a small tree with line
   numbers, read into the model (graphtype.py);
2. an lxml parser target (SAX-like) over the instance: no tree is built,
   device ids and edge paths go to the C loader in large chunks, values are
   packed straight into flat per-type arrays.  Memory stays proportional to
   those arrays, not to the file.

Errors found in pass 2 know the offending id or path but not its line; a
third scan, on the error path only, finds it.
"""
from __future__ import annotations

import gzip
import io
from array import array
from concurrent.futures import ThreadPoolExecutor
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
CHUNK = 1 << 16          # devices or edges handed to the C loader at once
HALT = "__halt__"


class Source:
    """A file path or XML text, and how to name it in messages."""

    def __init__(self, xml: str | Path):
        text = str(xml)
        self.data: bytes | None = None
        if isinstance(xml, str) and text.lstrip().startswith("<"):
            self.data = text.encode()
            self.name = "<string>"
            self.path = None
        else:
            self.path = Path(text)
            self.name = self.path.name
            if not self.path.is_file():
                raise BadInput(f"{text}: no such file")

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
    n_edges: int = 0

    @property
    def n_devices(self) -> int:
        return len(self.ids)


class InstanceBuilder:
    """The lxml parser target for pass 2."""

    def __init__(self, src: Source, graph: GraphType, ns: str, lib, ffi):
        self.src, self.g, self.lib, self.ffi = src, graph, lib, ffi
        self.v4 = graph.version >= 4
        t = {n: ns + n for n in ("DevI", "ExtI", "EdgeI", "P", "S", "GraphInstance", "Properties")}
        self.T = t
        self.types = list(graph.devices.values())
        self.type_index = {d.id: d.index for d in self.types}
        self.loader = ffi.gc(lib.pl_create(_pin_table(graph).encode(), len(self.types), graph.max_outputs,
                                           len(graph.edge_pins)), lib.pl_destroy)
        self.inst = Instance(graph, src, "", ns, self.loader,
                             props=[bytearray() for _ in self.types], state=[bytearray() for _ in self.types])
        self.inst.graph_props = graph.props.default
        self.caches: dict = {}
        self.in_instance = False
        self.in_properties = False
        self.edge_tag = ns + "EdgeI"
        # the device being read as [external, id, type, P, S]; the P and S of
        # the last edge; pending: one of those, or text, waits to be used
        self.elem = None
        self.edge_text: list[str | None] = [None, None]
        self.edges_before = 0      # edges read before the last other element
        self.pending = False
        self.text: list[str] | None = None
        self.text_slot = False
        self.chunk_ids: list[str] = []
        self.chunk_types = array("H")
        self.paths: list[str] = []
        self.send_index: list[int] | None = None
        self.edge_values: list[tuple[int, str | None, str | None]] = []
        self.edge_pending: dict[int, list[tuple[int, bytes, bytes | None]]] = {}
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="pstack-loader")
        self.jobs: list = []

    # ---- parser target -----------------------------------------------------------
    # Only start() and data(): lxml calls every method a target has for every
    # element, and end() would double the calls.  An element's P/S text is
    # complete when the next element starts, so that is when it is used.

    def target(self):
        """The parser target: the edge path (most elements) as a closure over
        locals, the rest in other_start."""
        edge_tag, paths, other = self.edge_tag, self.paths, self.other_start

        def start(tag, attrib):
            if tag == edge_tag:
                if self.pending:
                    self.finish_element()
                if len(paths) >= CHUNK:
                    self.flush_edges()
                if len(attrib) > 1:
                    self.edge_attributes(attrib)
                elif self.send_index is not None:
                    self.send_index.append(-1)
                paths.append(attrib.get("path"))
            else:
                other(tag, attrib)

        return SimpleNamespace(start=start, data=self.data, close=self.close)

    def other_start(self, tag, attrib):
        t = self.T
        if tag == t["P"] or tag == t["S"]:
            self.end_text()
            last_edge = self.inst.n_edges + len(self.paths) > self.edges_before
            if self.elem is not None or last_edge:
                self.text, self.text_slot, self.pending = [], tag == t["S"], True
            return
        self.finish_element()
        self.edges_before = self.inst.n_edges + len(self.paths)
        if tag == t["DevI"] or tag == t["ExtI"]:
            self.elem = [tag == t["ExtI"], attrib.get("id"), attrib.get("type"), attrib.get("P"), attrib.get("S")]
            self.pending = True
        elif tag == t["GraphInstance"]:
            self.begin_instance(attrib)
        elif tag == t["Properties"] and self.in_instance and not self.inst.ids and not self.chunk_ids:
            self.text, self.in_properties, self.pending = [], True, True

    def data(self, text):
        if self.text is not None:
            self.text.append(text)

    def close(self):
        self.finish_element()
        return self.inst

    def end_text(self) -> None:
        """The P or S (or graph Properties) text being read is complete."""
        if self.text is None:
            return
        text = "".join(self.text)
        self.text = None
        if self.in_properties:
            self.in_properties = False
            if not self.v4:
                self.inst.graph_props = self.pack(self.g.props, json_value(text), "graph properties")
        elif self.elem is not None:
            self.elem[4 if self.text_slot else 3] = text
        else:
            self.edge_text[self.text_slot] = text

    def finish_element(self) -> None:
        """The element before the one starting now is complete: use it."""
        self.end_text()
        self.pending = False
        if self.elem is not None:
            elem, self.elem = self.elem, None
            self.device(*elem)
        elif self.edge_text != [None, None]:
            self.edge_values.append((len(self.paths) - 1, *self.edge_text))
            self.edge_text = [None, None]

    # ---- elements -----------------------------------------------------------------

    def begin_instance(self, attrib) -> None:
        if self.inst.id:
            raise self.src.bad("more than one <GraphInstance>: give one per file")
        self.in_instance = True
        self.inst.id = attrib.get("id", "")
        gt = attrib.get("graphTypeId")
        if gt != self.g.id:
            raise self.src.bad(f"<GraphInstance id='{self.inst.id}'> has graphTypeId '{gt}', "
                               f"but the graph type is '{self.g.id}'", self._line("GraphInstance", "id", self.inst.id))
        if self.v4 and attrib.get("P"):
            self.inst.graph_props = self.pack(self.g.props, c_value(attrib["P"]), "graph properties")

    def device(self, external: bool, did: str, tname: str, ptext: str | None, stext: str | None) -> None:
        tix = self.type_index.get(tname)
        if tix is None:
            what = "ExtI" if external else "DevI"
            raise self.bad_elem(what, "id", did, f"device '{did}' has unknown device type '{tname}'")
        dt = self.types[tix]
        what = "ExtI" if external else "DevI"
        if dt.external != external:
            raise self.bad_elem(what, "id", did, f"device '{did}': type '{tname}' is "
                                f"{'an ExternalType: use <ExtI>' if dt.external else 'not an ExternalType'}")
        if external:
            if did != HALT:
                raise Unsupported(f"external device '{did}': only the '{HALT}' external is supported yet",
                                  self.src.name, self._line("ExtI", "id", did))
            self.inst.halt = len(self.inst.ids) + len(self.chunk_ids)
        try:
            self.inst.props[tix] += self.value(dt.props, ptext, ("P", tix)) if ptext else dt.props.default
            self.inst.state[tix] += self.value(dt.state, stext, ("S", tix)) if stext else dt.state.default
        except BadInput as e:
            raise self.bad_elem(what, "id", did, f"device '{did}': {e.detail}") from None
        self.chunk_ids.append(did)
        self.chunk_types.append(tix)
        if len(self.chunk_ids) >= CHUNK:
            self.flush_devices()

    def edge_attributes(self, attrib) -> None:
        """sendIndex, and v4 P and S attributes, of an edge."""
        si = attrib.get("sendIndex")
        if si is not None:
            if self.send_index is None:
                self.send_index = [-1] * len(self.paths)
            try:
                self.send_index.append(int(si))
            except ValueError:
                path = attrib.get("path")
                raise self.bad_elem("EdgeI", "path", path, f"edge '{path}': sendIndex '{si}' is not an integer")
        if self.v4 and (attrib.get("P") or attrib.get("S")):
            self.edge_text = [attrib.get("P"), attrib.get("S")]
            self.pending = True

    # ---- values ---------------------------------------------------------------------

    def value(self, layout, text: str | None, key) -> bytes:
        """Packed bytes of a P or S value over the layout's defaults; cached, as
        many devices share their values."""
        if text is None or not text.strip():
            return layout.default
        cache = self.caches.setdefault(key, {})
        packed = cache.get(text)
        if packed is None:
            packed = self.pack(layout, c_value(text) if self.v4 else json_value(text), None)
            if len(cache) > 4096:
                cache.clear()
            cache[text] = packed
        return packed

    @staticmethod
    def pack(layout, value, what: str | None) -> bytes:
        try:
            return layout.pack(value)
        except BadInput as e:
            raise BadInput(f"{what}: {e.detail}" if what else e.detail) from None

    # ---- handing chunks to the C loader ----------------------------------------------------

    # The C loader works in a thread of its own (cffi releases the GIL), so it
    # indexes one chunk while Python parses the next.  Its errors surface at
    # the next flush or at the end.

    def later(self, fn, *args) -> None:
        self.settle()
        self.jobs.append(self.pool.submit(fn, *args))

    def settle(self, wait: bool = False) -> None:
        while self.jobs and (wait or self.jobs[0].done()):
            self.jobs.pop(0).result()            # re-raises the chunk's BadInput

    def flush_devices(self) -> None:
        if not self.chunk_ids:
            return
        ids, types = self.chunk_ids, self.chunk_types
        self.inst.ids += ids
        self.chunk_ids, self.chunk_types = [], array("H")
        self.later(self._add_devices, "\n".join(ids).encode(), ids, types)

    def _add_devices(self, blob: bytes, ids: list[str], types: array) -> None:
        dup = self.lib.pl_add_devices(self.loader, blob, len(blob), self.ffi.from_buffer("uint16_t[]", types), len(ids))
        if dup >= 0:
            raise self.bad_elem("DevI", "id", ids[dup], f"duplicate device id '{ids[dup]}'", occurrence=2)

    def flush_edges(self) -> None:
        self.flush_devices()
        if not self.paths:
            return
        if None in self.paths:
            e = self.inst.n_edges + self.paths.index(None)
            raise self.src.bad("<EdgeI> without a path attribute", find_line(self.src, self.edge_tag, lambda el: True, e + 1))
        paths = self.paths[:]
        sidx = array("q", self.send_index) if self.send_index else None
        job = (self._add_edges, "\n".join(paths).encode(), paths, sidx, self.edge_values, self.inst.n_edges)
        self.inst.n_edges += len(paths)
        self.paths.clear()      # in place: the parser target holds this list
        self.send_index, self.edge_values = None, []
        self.later(*job)

    def _add_edges(self, blob: bytes, paths: list[str], sidx: array | None, values: list, base: int) -> None:
        lib, ffi = self.lib, self.ffi
        err = ffi.new("int*")
        bad = lib.pl_add_edges(self.loader, blob, len(blob), ffi.from_buffer("int64_t[]", sidx) if sidx else ffi.NULL,
                               len(paths), err)
        if bad >= 0:
            raise self.bad_elem("EdgeI", "path", paths[bad], _edge_error(err[0], paths[bad], self))
        for i, ptext, stext in values:
            self.edge_value(base + i, paths[i], ptext, stext)

    def edge_value(self, e: int, path: str, ptext: str | None, stext: str | None) -> None:
        kind = self.lib.pl_edge_kind(self.loader, e)
        if kind < 0:
            if (ptext or "").strip() or (stext or "").strip():
                raise self.bad_elem("EdgeI", "path", path, f"edge '{path}' has values, but its input pin has "
                                    "no edge properties or state")
            return
        pin = self.g.edge_pins[kind]
        try:
            p = self.value(pin.props, ptext, ("EP", kind))
            s = self.value(pin.state, stext, ("ES", kind))
        except BadInput as err:
            raise self.bad_elem("EdgeI", "path", path, f"edge '{path}': {err.detail}") from None
        self.edge_pending.setdefault(kind, []).append((self.lib.pl_edge_slot(self.loader, e), p, s))

    def finish(self) -> Instance:
        self.flush_edges()
        self.flush_devices()
        self.settle(wait=True)
        if not self.inst.id and not self.inst.ids:
            raise self.src.bad("no <GraphInstance> in file")
        for pin in self.g.edge_pins:
            count = self.lib.pl_kind_count(self.loader, pin.kind)
            eprops, estate = bytearray(pin.props.default * count), bytearray(pin.state.default * count)
            for slot, p, s in self.edge_pending.get(pin.kind, []):
                eprops[slot * pin.props.size:(slot + 1) * pin.props.size] = p
                estate[slot * pin.state.size:(slot + 1) * pin.state.size] = s
            self.inst.eprops.append(eprops)
            self.inst.estate.append(estate)
        return self.inst

    # ---- locating errors -------------------------------------------------------------

    def bad_elem(self, tag: str, attr: str, value: str, detail: str, occurrence: int = 1) -> BadInput:
        return self.src.bad(detail, self._line(tag, attr, value, occurrence))

    def _line(self, tag: str, attr: str, value: str, occurrence: int = 1) -> int | None:
        return find_line(self.src, self.T.get(tag, tag), lambda el: el.get(attr) == value, occurrence)


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
    for d in g.devices.values():
        rows += [f"I {d.index} {p.index} {p.message.index} {p.kind} {p.name}" for p in d.inputs]
        rows += [f"O {d.index} {p.index} {p.message.index} {int(p.indexed)} {p.name}" for p in d.outputs]
    return "\n".join(rows) + "\n"


def _edge_error(code: int, path: str, b: InstanceBuilder) -> str:
    dst, _, src = path.partition("-")
    dst_dev, _, dst_pin = dst.partition(":")
    src_dev, _, src_pin = src.partition(":")
    lib = b.lib

    def type_of(dev: str) -> str:
        index = lib.pl_find(b.loader, dev.encode(), len(dev.encode()))
        return b.types[lib.pl_dev_types(b.loader)[index]].id

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
        d, s = b.g.devices[type_of(dst_dev)].input(dst_pin), b.g.devices[type_of(src_dev)].output(src_pin)
        return (f"edge '{path}' joins output pin '{src_pin}' (message type '{s.message.id}') to input pin "
                f"'{dst_pin}' (message type '{d.message.id}')")
    if code == lib.PL_E_SEND_INDEX_BROADCAST:
        return f"edge '{path}' has a sendIndex, but output pin '{src_pin}' is not indexed"
    if code == lib.PL_E_SEND_INDEX_MIXED:
        return f"edge '{path}' has no sendIndex, but other edges of '{src_dev}:{src_pin}' have one"
    if code == lib.PL_E_SEND_INDEX_RANGE:
        return f"edge '{path}': sendIndex is not below the number of edges of '{src_dev}:{src_pin}'"
    return f"edge '{path}': sendIndex is used twice on '{src_dev}:{src_pin}'"


def read_instance(src: Source, graph: GraphType, ns: str, lib, ffi) -> Instance:
    """Pass 2: the instance into flat arrays and the C loader."""
    builder = InstanceBuilder(src, graph, ns, lib, ffi)
    parser = etree.XMLParser(target=builder.target(), huge_tree=True)
    with src.open() as f, builder.pool:
        try:
            while True:
                block = f.read(1 << 20)
                if not block:
                    break
                parser.feed(block)
            parser.close()
            return builder.finish()
        except etree.XMLSyntaxError as e:
            raise src.syntax(e) from None
