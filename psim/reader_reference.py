"""The reference instance reader: pass 2 as psim read it before the C
reader (core/instance_reader.cpp) took over, an lxml parser target with the
values packed in Python.  Kept only as the reference
tests/psim/test_loader.py compares the C reader with, byte for byte; psim
itself never uses it."""
from __future__ import annotations

from array import array
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from lxml import etree

from .errors import BadInput
from .model import GraphType
from .reader import HALT, Instance, Source, _edge_error, _pin_table, find_line, pack_value

CHUNK = 1 << 16          # devices or edges handed to the C loader at once

class InstanceBuilder:
    """The lxml parser target for pass 2."""

    def __init__(self, src: Source, graph: GraphType, ns: str, lib, ffi):
        self.src, self.g, self.lib, self.ffi = src, graph, lib, ffi
        self.v4 = graph.version >= 4
        t = {n: ns + n for n in ("DevI", "ExtI", "EdgeI", "P", "S", "M", "GraphInstance", "Properties")}
        self.T = t
        self.types = list(graph.devices.values())
        self.type_index = {d.id: d.index for d in self.types}
        self.loader = ffi.gc(lib.pl_create(_pin_table(graph).encode(), len(self.types), graph.max_outputs,
                                           len(graph.edge_pins)), lib.pl_destroy)
        self.inst = Instance(graph, src, "", ns, self.loader,
                             props=[bytearray() for _ in self.types], state=[bytearray() for _ in self.types])
        self.inst.graph_props = graph.props.default
        self.caches: dict = {}
        self.external_types = {d.index for d in self.types if d.external}
        self.in_instance = False
        self.edge_tag, self.dev_tag = ns + "EdgeI", ns + "DevI"
        # the chunk of devices read: ids, type names, P and S (attribute or
        # child text), which are ExtI
        self.ids: list[str] = []
        self.tnames: list[str] = []
        self.dev_p: list[str | None] = []
        self.dev_s: list[str | None] = []
        self.dev_ext: set[int] = set()
        # the chunk of edges read: paths, sendIndex, {index: [P, S]}
        self.paths: list[str] = []
        self.send_index: list[int] | None = None
        self.edge_values: dict[int, list[str | None]] = {}
        self.edge_pending: dict[int, list[tuple[int, bytes, bytes | None]]] = {}
        # text being read: a P or S of the last device or edge, or the graph's Properties
        self.last: str | None = None        # "device" or "edge": owner of a P or S child
        self.text: list[str] | None = None
        self.text_owner, self.text_slot = "", 0
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="pstack-loader")
        self.jobs: list = []

    # ---- parser target -----------------------------------------------------------
    # Only start() and data(): lxml calls every method a target has for every
    # element, and end() would double the calls.  A P or S text is complete
    # when the next element starts.  Edges and devices, nearly every element,
    # take a short path through a closure over locals.

    def target(self):
        edge_tag, dev_tag, other = self.edge_tag, self.dev_tag, self.other_start
        paths, ids, tnames, dev_p, dev_s = self.paths, self.ids, self.tnames, self.dev_p, self.dev_s

        def start(tag, attrib):
            if self.text is not None:
                self.end_text()
            if tag == edge_tag:
                if len(paths) >= CHUNK:
                    self.flush_edges()
                if len(attrib) > 1:
                    self.edge_attributes(attrib)
                elif self.send_index is not None:
                    self.send_index.append(-1)
                paths.append(attrib.get("path"))
                self.last = "edge"
            elif tag == dev_tag:
                if len(ids) >= CHUNK:
                    self.flush_devices()
                ids.append(attrib.get("id"))
                tnames.append(attrib.get("type"))
                dev_p.append(attrib.get("P"))
                dev_s.append(attrib.get("S"))
                self.last = "device"
            else:
                other(tag, attrib)

        self.target_start = start
        return SimpleNamespace(start=start, data=self.data, close=self.close)

    def other_start(self, tag, attrib):
        t = self.T
        if tag == t["P"] or tag == t["S"]:
            if self.last:
                self.text, self.text_owner, self.text_slot = [], self.last, int(tag == t["S"])
        elif tag == t["ExtI"]:
            self.target_start(self.dev_tag, attrib)
            self.dev_ext.add(len(self.ids) - 1)
        elif tag == t["GraphInstance"]:
            self.begin_instance(attrib)
        elif tag == t["Properties"] and self.in_instance and not self.inst.ids and not self.ids:
            self.text, self.text_owner = [], "graph"
        elif tag != t["M"]:
            self.last = None

    def data(self, text):
        if self.text is not None:
            self.text.append(text)

    def close(self):
        self.end_text()
        return self.inst

    def end_text(self) -> None:
        """The P or S (or graph Properties) text being read is complete."""
        if self.text is None:
            return
        text = "".join(self.text)
        self.text = None
        if self.text_owner == "graph":
            if not self.v4:
                self.inst.graph_props = pack_value(self.g.props, text, False, "graph properties")
        elif self.text_owner == "device":
            (self.dev_s if self.text_slot else self.dev_p)[-1] = text
        else:
            self.edge_values.setdefault(len(self.paths) - 1, [None, None])[self.text_slot] = text

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
            self.inst.graph_props = pack_value(self.g.props, attrib["P"], True, "graph properties")

    def device_types(self) -> array:
        """Type index of each device in the chunk; externals checked."""
        try:
            tix = array("H", map(self.type_index.__getitem__, self.tnames))
        except KeyError:
            i = next(i for i, n in enumerate(self.tnames) if n not in self.type_index)
            raise self.bad_device(i, f"unknown device type '{self.tnames[i]}'") from None
        if self.external_types or self.dev_ext:
            for i, t in enumerate(tix):
                ext = i in self.dev_ext
                if (t in self.external_types) != ext:
                    raise self.bad_device(i, f"type '{self.tnames[i]}' is " +
                                          ("not an ExternalType" if ext else "an ExternalType: use <ExtI>"))
                if ext and self.ids[i] != HALT:
                    self.inst.externals.append(len(self.inst.ids) + i)     # served by an application engine
                elif ext:
                    self.inst.halt = len(self.inst.ids) + i
        return tix

    def device_values(self, tix: array) -> None:
        """Append the chunk's properties and state to the per-type arrays."""
        props, state = self.inst.props, self.inst.state
        n = len(tix)
        if self.dev_p.count(None) == n and self.dev_s.count(None) == n:     # no values: bulk
            for t, dt in enumerate(self.types):
                count = tix.count(t) if len(self.types) > 1 else n
                props[t] += dt.props.default * count
                state[t] += dt.state.default * count
            return
        for i, t in enumerate(tix):
            dt = self.types[t]
            try:
                props[t] += self.value(dt.props, self.dev_p[i], ("P", t))
                state[t] += self.value(dt.state, self.dev_s[i], ("S", t))
            except BadInput as e:
                raise self.bad_device(i, e.detail) from None

    def bad_device(self, i: int, detail: str) -> BadInput:
        did = self.ids[i]
        tag = "ExtI" if i in self.dev_ext else "DevI"
        return self.bad_elem(tag, "id", did, f"device '{did}': {detail}")

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
                raise self.bad_elem("EdgeI", "path", path,
                                    f"edge '{path}': sendIndex '{si}' is not an integer") from None
        elif self.send_index is not None:
            self.send_index.append(-1)
        if self.v4 and (attrib.get("P") or attrib.get("S")):
            self.edge_values[len(self.paths)] = [attrib.get("P"), attrib.get("S")]

    # ---- values ---------------------------------------------------------------------

    def value(self, layout, text: str | None, key) -> bytes:
        """Packed bytes of a P or S value over the layout's defaults; cached, as
        many devices share their values."""
        if text is None or not text.strip():
            return layout.default
        cache = self.caches.setdefault(key, {})
        packed = cache.get(text)
        if packed is None:
            packed = pack_value(layout, text, self.v4)
            if len(cache) > 4096:
                cache.clear()
            cache[text] = packed
        return packed

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
        if not self.ids:
            return
        tix = self.device_types()
        self.device_values(tix)
        ids = self.ids[:]
        self.inst.ids += ids
        for chunk in (self.ids, self.tnames, self.dev_p, self.dev_s):
            chunk.clear()       # in place: the parser target holds these lists
        self.dev_ext.clear()
        self.later(self._add_devices, "\n".join(ids).encode(), ids, tix)

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
        self.send_index, self.edge_values = None, {}
        self.later(*job)

    def _add_edges(self, blob: bytes, paths: list[str], sidx: array | None, values: dict, base: int) -> None:
        lib, ffi = self.lib, self.ffi
        err = ffi.new("int*")
        bad = lib.pl_add_edges(self.loader, blob, len(blob), ffi.from_buffer("int64_t[]", sidx) if sidx else ffi.NULL,
                               len(paths), err)
        if bad >= 0:
            raise self.bad_elem("EdgeI", "path", paths[bad], _edge_error(err[0], paths[bad], self.g, lib, self.loader))
        for i, (ptext, stext) in values.items():
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


def read_instance_reference(src: Source, graph: GraphType, ns: str, lib, ffi) -> Instance:
    """Pass 2 as it was: the reference for tests."""
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
