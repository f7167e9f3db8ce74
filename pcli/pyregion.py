"""A region of a process whose devices are handled in Python: the engine
that pd/region.py's RegionRun drives, with the interface of psim's C engine
(start, run, inject, outbox, hardware_idle, outcome, logs), so a Python
region speaks the same data plane and termination protocol as pd's workers.

Messages arrive as psim's packed records (psim/core/records.h): a header
(source device, send index, output pin, length) and the message bytes in
the graph-schema layout, decoded and encoded by psim's own type code
(psim/typed.py Layout).  Per-message mode calls receive(engine, Message) for
each delivery; batch mode calls receive_batch(engine, deliveries) with a
NumPy structured array per message type (dst, dst_pin, src, src_pin as
indices, the fields under "msg").
"""
from __future__ import annotations

import struct
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from psim.engine import BUDGET, IDLE, STOP_EXIT, STOP_FAIL, STOPPED, SUP_DEV
from psim.reader import Instance
from psim.topology import REMOTE, Topology

from .supervision import Supervision

HEADER = struct.Struct("<IIHH")          # pe_record: src, send_index, pin, length
BROADCAST = 0xFFFFFFFF
FAIL_HANDLER = 1                         # outcome.fail_kind of a user function that raised


@dataclass
class Message:
    """One delivery to a Python device: destination device and input pin,
    source device and output pin, and the message's fields."""
    dst: str
    pin: str
    src: str
    src_pin: str
    fields: dict


@dataclass
class Outcome:
    """The counters RegionRun and the termination protocol read (as psim's pe_outcome)."""
    stop: int = 0
    exit_code: int = 0
    fail_kind: int = 0
    remote_sent: int = 0
    remote_received: int = 0
    sends: int = 0
    delivered: int = 0
    cancelled: int = 0
    devidle_calls: int = 0
    steps: int = 0


@dataclass
class Route:
    """Where a (device, output pin) sends: local (device, input pin) pairs,
    other regions, and the message layout."""
    local: list[tuple[int, int]]
    remote: list[int]
    layout: Any
    pin_name: str
    supervisor: bool                   # the __SUP_OUT__ pin: it sends to the supervisor, not along edges


@dataclass
class PyRegion:
    inst: Instance
    topo: Topology
    nregions: int
    receive: Callable | None = None
    receive_batch: Callable | None = None
    hardware_idle_fn: Callable | None = None
    owner: Any = None                     # what the user's functions get as `engine`
    sup_region: int = 0                   # the region that runs the supervisor, if the graph has one
    supervisor_idle_fn: Callable | None = None
    start_fn: Callable | None = None      # called once, as the region starts (sends from it go out then)
    o: Outcome = field(default_factory=Outcome)

    def __post_init__(self):
        self.types = list(self.inst.graph.devices.values())
        self.index = {d: i for i, d in enumerate(self.inst.ids)}
        self.queue: deque = deque()       # (dst, dst_pin, src, pin, payload)
        self.outboxes = [bytearray() for _ in range(self.nregions)]
        self.routes: dict[tuple[int, int], Route] = {}
        self.arrays: deque = deque()      # batch mode: (layout, deliveries) made by inject
        self.error: str | None = None
        self.lines: list[tuple[str, int, str]] = []
        self.sup = Supervision(self.inst, self.topo, self.sup_region)

    # ---- the engine interface (as psim.engine.Engine) --------------------------------

    def start(self, seconds: float = 0.0) -> int:
        if self.start_fn:
            self._call(self.start_fn, self.owner)
        return STOPPED if self.o.stop else BUDGET

    def run(self, budget: int, seconds: float = 0.0) -> int:
        each_array = self._deliver_array if self.receive_batch else self._deliver_rows
        while self.arrays and budget > 0 and not self.o.stop:
            budget -= each_array(*self.arrays.popleft())
        deliver = self._deliver_batch if self.receive_batch else self._deliver_one
        while self.queue and budget > 0 and not self.o.stop:
            budget -= deliver()
        if self.o.stop:
            return STOPPED
        return IDLE if not self.queue and not self.arrays else BUDGET

    def inject(self, records) -> None:
        """Incoming records from another region; ValueError if malformed.
        Frames of one message type are parsed with NumPy in both modes."""
        if not self._inject_array(records):
            self._inject_each(records)

    def _inject_each(self, records) -> None:
        data, at = memoryview(records), 0
        while at < len(data):
            if len(data) - at < HEADER.size:
                raise ValueError("truncated record header")
            src, send_index, pin, length = HEADER.unpack_from(data, at)
            at += HEADER.size
            if at + length > len(data):
                raise ValueError("truncated record body")
            route = self._route(src, pin) if src != SUP_DEV else None
            if route is not None and length != route.layout.size:
                raise ValueError("message length does not match the pin's message type")
            payload = bytes(data[at:at + length])
            at += length
            self.o.remote_received += 1
            if route is None or route.supervisor:
                self.sup.check(src, send_index, pin, length)
                self.queue.extend(self.sup.deliveries(src, send_index, pin, payload))
                continue
            for dst, dst_pin in self._targets(src, pin, send_index, route):
                self.queue.append((dst, dst_pin, src, pin, payload))

    def outbox(self, region: int) -> memoryview | None:
        box = self.outboxes[region]
        return memoryview(box) if box else None

    def clear_outbox(self, region: int) -> None:
        self.outboxes[region] = bytearray()

    def hardware_idle(self, seconds: float = 0.0) -> int:
        self._supervisor_tick()
        if self.hardware_idle_fn and not self.o.stop:
            self._call(self.hardware_idle_fn, self.owner)
        return STOPPED if self.o.stop else BUDGET

    def finish(self, seconds: float = 0.0) -> int:
        """The process ended idle: the supervisor's last tick, if it is ours."""
        self._supervisor_tick()
        return STOPPED if self.o.stop else BUDGET

    def _supervisor_tick(self) -> None:
        if self.sup.here and self.supervisor_idle_fn and not self.o.stop:
            self._call(self.supervisor_idle_fn, self.owner)

    def outcome(self) -> Outcome:
        return self.o

    def failure(self, o: Outcome) -> str:
        return self.error or "failed"

    def logs(self) -> list[tuple[str, int, str]]:
        lines, self.lines = self.lines, []
        return lines

    def drain_trace(self) -> None:
        """A Python region records no event trace (psim/trace.py): pcli.run refuses trace=True with one."""

    # ---- what the user's functions call ------------------------------------------

    def send(self, src: str, pin: str, send_index: int | None = None, fields: dict | None = None) -> None:
        """Send from device `src` on its output pin `pin`: to its local
        destinations (queued) and to every other region holding one."""
        s = self._device(src)
        t = self._type(s)
        out = self._output(t, pin, f"device '{src}' (type {t.id})")
        route = self._route(s, out.index)
        payload = route.layout.pack(fields or {})
        self.o.sends += 1
        if out.supervisor:
            self._to_supervisor(s, out.index, payload)
            return
        index = BROADCAST if send_index is None else send_index
        local, regions = (route.local, route.remote) if send_index is None else self._indexed(s, out.index, index)
        for dst, dst_pin in local:
            self.queue.append((dst, dst_pin, s, out.index, payload))
        header = HEADER.pack(s, index, out.index, len(payload))
        for q in regions:
            self.outboxes[q] += header + payload
            self.o.remote_sent += 1

    def send_batch(self, src: str | np.ndarray, pin: str, msg: np.ndarray | dict | None = None,
                   send_index: np.ndarray | int | None = None) -> None:
        """Send many messages on output pin `pin` at once, as a loop of `send`
        would (same records in the outboxes, same local deliveries, same
        counters), but with NumPy: message i from device src[i] (device
        indices, all of one type) or all from device `src` (an id), its
        fields msg[i] (a structured array of the pin's layout_dtype, or a
        dict of arrays or scalars by field name; fields not given keep their
        defaults), to edge send_index[i] of an indexed pin."""
        n = batch_length(src, msg, send_index)
        if not n:
            return
        srcs, one_source = self._senders(src, n)
        sources = srcs[:1] if one_source else srcs        # one source (the usual echo): check it once
        t = self._same_type(sources)
        out = self._output(t, pin, f"device type {t.id}")
        if out.supervisor:
            raise ValueError("send_batch: messages to the supervisor go one by one (engine.send)")
        route = self._route(int(srcs[0]), out.index)
        keys = np.broadcast_to(sources.astype(np.int64) * self.topo.max_out + out.index, (n,))
        index = self._send_indices(out, keys, send_index, n)
        recs = np.empty(n, record_dtype(route.layout))
        recs["src"], recs["send_index"], recs["pin"], recs["length"] = srcs, index, out.index, route.layout.size
        fill_messages(recs["msg"], route.layout, msg)
        self.o.sends += n
        self._send_remote(route, keys, recs, one_source)
        self._queue_local(route.layout, self._fan_out(route, keys, recs, one_source))

    def reply(self, to: str | int, fields: dict | None = None) -> None:
        """The supervisor's reply to device `to` (its __SUP_IN__; dropped if
        it has none, as the reference drops it)."""
        dst = self.index.get(to, -1) if isinstance(to, str) else int(to)
        if not 0 <= dst < self.inst.n_devices:
            raise ValueError(f"reply: no device {to!r} in this application")
        self._must_supervise("reply")
        if self.sup.listens(dst):
            self._from_supervisor(dst, self.sup.layout.pack(fields or {}))

    def broadcast(self, fields: dict | None = None) -> None:
        """The supervisor's broadcast to every device with a __SUP_IN__."""
        self._must_supervise("broadcast")
        self._from_supervisor(BROADCAST, self.sup.layout.pack(fields or {}))

    def exit(self, code: int = 0) -> None:
        if not self.o.stop:
            self.o.stop, self.o.exit_code = STOP_EXIT, int(code)

    def log(self, device: str, text: str, level: int = 1) -> None:
        self.lines.append((device, level, text))

    # ---- inside ------------------------------------------------------------------------

    def _to_supervisor(self, src: int, pin: int, payload: bytes) -> None:
        if self.sup.here:
            self.queue.extend(self.sup.deliveries(src, BROADCAST, pin, payload))
        else:
            self.outboxes[self.sup.sup_region] += HEADER.pack(src, BROADCAST, pin, len(payload)) + payload
            self.o.remote_sent += 1

    def _must_supervise(self, what: str) -> None:
        if not self.sup.here:
            raise ValueError(f"{what}: this engine does not run the application's supervisor "
                             "(rmap={'__supervisor__': region} with rcon={region: engine})")

    def _from_supervisor(self, send_index: int, payload: bytes) -> None:
        """A reply (to device send_index) or broadcast: queued for devices
        here, a record for each other region concerned."""
        if send_index == BROADCAST:
            regions = self.sup.far
        else:
            q = int(self.topo.region[send_index])
            regions = [q] if q != self.topo.my_region else []
        if send_index == BROADCAST or not regions:
            self.queue.extend(self.sup.deliveries(SUP_DEV, send_index, 0, payload))
        for q in regions:
            self.outboxes[q] += HEADER.pack(SUP_DEV, send_index, 0, len(payload)) + payload
            self.o.remote_sent += 1

    def _message(self, dst: int, dst_pin: int, src: int, pin: int, fields: dict) -> Message:
        """What receive() gets for one delivery (to or from the supervisor too)."""
        if SUP_DEV in (dst, src):
            return Message(*self.sup.names(dst, src), fields)
        return self._device_message(dst, dst_pin, src, pin, fields)

    def _device_message(self, dst: int, dst_pin: int, src: int, pin: int, fields: dict) -> Message:
        ids = self.inst.ids
        return Message(ids[dst], self._type(dst).inputs[dst_pin].name, ids[src], self._route(src, pin).pin_name,
                       fields)

    def _deliver_one(self) -> int:
        delivery = self.queue.popleft()
        dst, dst_pin, src, pin, payload = delivery
        msg = self._message(dst, dst_pin, src, pin, self._layout(delivery).unpack(payload))
        self.o.delivered += dst != SUP_DEV          # a message to the supervisor is a send, not a delivery
        self.o.steps += 1
        self._call(self.receive, self.owner, msg)
        return 1

    def _inject_array(self, records) -> bool:
        """The fast path: records of one message type, parsed and fanned out
        to their local destinations with NumPy.  False (nothing taken) when
        the frame mixes message types, or its type is not made of scalars
        (per-message mode takes those): the slow path takes it."""
        if len(records) < HEADER.size:
            return False
        src, _, pin, length = HEADER.unpack_from(records, 0)
        if src == SUP_DEV:
            return False                            # supervisor traffic takes the slow path
        route = self._route(src, pin)
        if route.supervisor or not (self.receive_batch or route.layout.spec.flat):
            return False
        row = record_dtype(route.layout)
        if length != route.layout.size or len(records) % row.itemsize:
            return False
        recs = np.frombuffer(records, row)
        if (recs["src"] >= self.inst.n_devices).any():
            return False
        keys = recs["src"].astype(np.int64) * self.topo.max_out + recs["pin"]
        kinds = keys[:1] if (keys == keys[0]).all() else np.unique(keys)     # one (device, pin): no sort
        if len(kinds) > 64 or (recs["length"] != length).any():
            return False
        routes = [self._route(int(k) // self.topo.max_out, int(k) % self.topo.max_out) for k in kinds]
        if any(r.layout is not route.layout or r.supervisor for r in routes):
            return False
        self.o.remote_received += len(recs)
        self.arrays.extend((route.layout, batch) for batch in self._fan_out(route, keys, recs, len(kinds) == 1))
        return True

    def _fan_out(self, route: Route, keys: np.ndarray, recs: np.ndarray, one_source: bool) -> list[np.ndarray]:
        """The local deliveries of records (all of route's message type; keys:
        their (device, pin) keys), by the topology's CSR: delivery arrays."""
        if one_source and (recs["send_index"] == BROADCAST).all():
            return self._fan_out_one(route, recs)   # one (device, pin) broadcasting: no gather
        lo = self.topo.out_off[keys].astype(np.int64)
        rows, offset = expand(lo, self.topo.out_off[keys + 1].astype(np.int64))
        edges = self.topo.edges[lo[rows] + offset]
        indexed = recs["send_index"][rows]
        keep = ((edges["flags"] & REMOTE) == 0) & ((indexed == BROADCAST) | (indexed == offset))
        rows, edges = rows[keep], edges[keep]
        batch = np.zeros(len(rows), delivery_dtype(route.layout))
        batch["dst"], batch["dst_pin"] = edges["dst"], edges["dst_pin"]
        batch["src"], batch["src_pin"] = recs["src"][rows], recs["pin"][rows]
        copy_fields(batch["msg"], recs["msg"][rows])
        return [batch] if len(batch) else []

    def _fan_out_one(self, route: Route, recs: np.ndarray) -> list[np.ndarray]:
        """Records all from one (device, pin), broadcast: each of its local
        destinations gets them all, in one array."""
        batches = []
        for dst, dst_pin in route.local:
            batch = np.empty(len(recs), delivery_dtype(route.layout))
            batch["dst"], batch["dst_pin"], batch["src"], batch["src_pin"] = dst, dst_pin, recs["src"], recs["pin"]
            copy_fields(batch["msg"], recs["msg"])
            batches.append(batch)
        return batches

    def _deliver_rows(self, layout, batch) -> int:
        """Per-message mode: receive() for each delivery of an array."""
        names, done = layout.spec.names, 0
        for dst, dst_pin, src, pin, values in zip(*(batch[k].tolist() for k in ("dst", "dst_pin", "src", "src_pin",
                                                                                "msg"))):
            if self.o.stop:
                break
            msg = self._device_message(dst, dst_pin, src, pin, dict(zip(names, values)))   # arrays: devices only
            done += 1
            self._call(self.receive, self.owner, msg)
        self.o.delivered += done
        self.o.steps += done
        return len(batch)

    def _deliver_array(self, layout, batch) -> int:
        self.o.delivered += len(batch)
        self.o.steps += len(batch)
        self._call(self.receive_batch, self.owner, batch)
        return len(batch)

    def _deliver_batch(self) -> int:
        """Every queued delivery of the first one's message type, as one array."""
        layout = self._layout(self.queue[0])
        same, rest = [], deque()
        for d in self.queue:
            (same if self._layout(d) is layout else rest).append(d)
        self.queue = rest
        batch = np.zeros(len(same), delivery_dtype(layout))
        batch["dst"], batch["dst_pin"], batch["src"], batch["src_pin"] = zip(*(d[:4] for d in same))
        batch["msg"] = np.frombuffer(b"".join(d[4] for d in same), layout_dtype(layout), count=len(same))
        self.o.delivered += int((batch["dst"] != SUP_DEV).sum())
        self.o.steps += len(same)
        self._call(self.receive_batch, self.owner, batch)
        return len(same)

    def _layout(self, delivery: tuple):
        """The message layout a queued delivery is read as."""
        dst, _, src, pin, _ = delivery
        return self.sup.in_layout(dst) if SUP_DEV in (dst, src) else self._route(src, pin).layout

    def _call(self, fn: Callable, *args) -> None:
        """A user function; one that raises fails the region with its traceback's last line."""
        try:
            fn(*args)
        except Exception as e:             # the user's code: any exception is theirs to see
            self.error = traceback.format_exception_only(e)[-1].strip()
            self.o.stop, self.o.exit_code, self.o.fail_kind = STOP_FAIL, 1, FAIL_HANDLER

    def _device(self, name: str) -> int:
        try:
            dev = self.index[name]
        except KeyError:
            raise ValueError(f"no device '{name}' in this application") from None
        if self.topo.region[dev] != self.topo.my_region:
            raise ValueError(f"device '{name}' is not in this engine's region {self.topo.my_region}")
        return dev

    def _route(self, src: int, pin: int) -> Route:
        route = self.routes.get((src, pin))
        if route is None:
            if src >= self.inst.n_devices:
                raise ValueError("source device index out of range")
            t = self._type(src)
            if pin >= len(t.outputs):
                raise ValueError("no such output pin")
            local = [(int(e["dst"]), int(e["dst_pin"])) for e in self.topo.local_edges(src, pin)]
            out = t.outputs[pin]
            route = Route(local, [int(q) for q in self.topo.remote_regions(src, pin)], out.message.layout, out.name,
                          out.supervisor)
            self.routes[(src, pin)] = route
        return route

    def _type(self, dev: int):
        return self.types[self.topo.types[dev]] if len(self.types) > 1 else self.types[0]

    def _targets(self, src: int, pin: int, send_index: int, route: Route) -> list[tuple[int, int]]:
        return route.local if send_index == BROADCAST else self._indexed(src, pin, send_index)[0]

    def _indexed(self, src: int, pin: int, send_index: int) -> tuple[list[tuple[int, int]], list[int]]:
        """Where an indexed send goes: its edge's destination here, or its region."""
        k = self.topo.key(src, pin)
        lo, hi = int(self.topo.out_off[k]), int(self.topo.out_off[k + 1])
        if not 0 <= send_index < hi - lo:
            raise ValueError(f"send index {send_index} out of range (the pin has {hi - lo} edges)")
        e = self.topo.edges[lo + send_index]
        if e["flags"] & REMOTE:
            return [], [int(self.topo.region[e["dst"]])]
        return [(int(e["dst"]), int(e["dst_pin"]))], []

    def _output(self, t, pin: str, who: str):
        """Output pin `pin` of device type t; `who` names the sender in the error."""
        out = next((p for p in t.outputs if p.name == pin), None)
        if out is None:
            raise ValueError(f"{who} has no output pin '{pin}'")
        return out

    # ---- batch sends (send_batch) ------------------------------------------------------

    def _senders(self, src: str | np.ndarray, n: int) -> tuple[np.ndarray, bool]:
        """A batch's source device of each message, as indices, checked to be
        this region's; and whether they are all one device."""
        if isinstance(src, str):
            return np.broadcast_to(np.uint32(self._device(src)), (n,)), True
        srcs = np.broadcast_to(np.asarray(src), (n,))
        if not np.issubdtype(srcs.dtype, np.integer):
            raise ValueError(f"src: a device id or an array of device indices, not {srcs.dtype} values")
        one_source = bool((srcs == srcs[0]).all())
        checked = srcs[:1] if one_source else srcs
        bad = (checked < 0) | (checked >= self.inst.n_devices)
        if bad.any():
            raise ValueError(f"source device index {checked[bad][0]} out of range "
                             f"(the application has {self.inst.n_devices} devices)")
        away = self.topo.region[checked] != self.topo.my_region
        if away.any():
            raise ValueError(f"device '{self.inst.ids[checked[away][0]]}' is not in this engine's region "
                             f"{self.topo.my_region}")
        return srcs.astype(np.uint32, copy=False), one_source

    def _same_type(self, srcs: np.ndarray):
        """The device type of every source; ValueError if they are of several."""
        types = self.topo.types[srcs]
        if len(self.types) > 1 and (types != types[0]).any():
            names = sorted({self.types[t].id for t in np.unique(types)})
            raise ValueError(f"the sources are of several device types ({', '.join(names)}): "
                             "send_batch takes one type at a time")
        return self._type(int(srcs[0]))

    def _send_indices(self, out, keys: np.ndarray, send_index, n: int) -> np.ndarray:
        """The send index of each record: BROADCAST on a broadcast pin, else
        the given edge numbers, checked against each source's edges (as the
        C engine, an indexed pin must be given one)."""
        if not out.indexed:
            if send_index is not None:
                raise ValueError(f"output pin '{out.name}' is not indexed: give no send_index")
            return np.full(n, BROADCAST, np.uint32)
        if send_index is None:
            raise ValueError(f"output pin '{out.name}' is indexed: give a send_index for each message")
        index = np.broadcast_to(np.asarray(send_index), (n,))
        if not np.issubdtype(index.dtype, np.integer):
            raise ValueError(f"send_index: integers, not {index.dtype} values")
        edges = self.topo.out_off[keys + 1].astype(np.int64) - self.topo.out_off[keys]
        bad = (index < 0) | (index >= edges)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"send index {index[i]} out of range (the pin has {edges[i]} edges)")
        return index.astype(np.uint32)

    def _send_remote(self, route: Route, keys: np.ndarray, recs: np.ndarray, one_source: bool) -> None:
        """Append each record to the outbox of every other region it goes
        to, keeping message order in each (the bytes a loop of send appends).
        One pin: the records are all broadcast or all indexed."""
        if one_source and recs["send_index"][0] == BROADCAST:
            for q in route.remote:            # every record to each of the source's regions
                self.outboxes[q] += memoryview(recs.view(np.uint8))
            self.o.remote_sent += len(recs) * len(route.remote)
            return
        rows, regions = self._remote_rows(keys, recs)
        for q in np.unique(regions):
            self.outboxes[q] += memoryview(recs[rows[regions == q]].view(np.uint8))
        self.o.remote_sent += len(rows)

    def _remote_rows(self, keys: np.ndarray, recs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which record goes to which other region, as (record row, region)
        pairs in record order: a broadcast to each region its (device, pin)
        lists, an indexed send to its edge's region if that edge is remote."""
        if recs["send_index"][0] == BROADCAST:
            lo = self.topo.rem_off[keys].astype(np.int64)
            rows, offset = expand(lo, self.topo.rem_off[keys + 1].astype(np.int64))
            return rows, self.topo.rem_reg[lo[rows] + offset]
        edges = self.topo.edges[self.topo.out_off[keys].astype(np.int64) + recs["send_index"]]
        rows = np.flatnonzero(edges["flags"] & REMOTE)
        return rows, self.topo.region[edges["dst"][rows]]

    def _queue_local(self, layout, batches: list[np.ndarray]) -> None:
        """Queue a batch send's local deliveries: as arrays for receive_batch,
        or one queue entry each (as send queues them) for receive."""
        if self.receive_batch:
            self.arrays.extend((layout, b) for b in batches)
            return
        for b in batches:
            self.queue.extend(zip(b["dst"].tolist(), b["dst_pin"].tolist(), b["src"].tolist(),
                                  b["src_pin"].tolist(), (m.tobytes() for m in b["msg"])))


def batch_length(src, msg, send_index) -> int:
    """How many messages send_batch's arguments make: the length of those
    that are arrays (they must agree), one message if none is."""
    columns = [src, send_index, *(msg.values() if isinstance(msg, dict) else [msg])]
    lengths = {len(c) for c in columns if not isinstance(c, str) and np.ndim(c) > 0}
    if len(lengths) > 1:
        raise ValueError(f"send_batch: src, msg and send_index have different lengths {sorted(lengths)}")
    return lengths.pop() if lengths else 1


def fill_messages(target: np.ndarray, layout, msg: np.ndarray | dict | None) -> None:
    """Lay messages into `target` (a column of the layout's dtype): the
    fields msg gives (a structured array's or a dict's, by name), the
    defaults for the others.  Field by field: NumPy copies whole structured
    rows several times slower."""
    if isinstance(msg, np.ndarray) and msg.dtype.names is not None:
        msg = {name: msg[name] for name in msg.dtype.names}
    elif msg is None:
        msg = {}
    elif not isinstance(msg, dict):
        raise ValueError("msg: a structured array of the pin's message layout, a dict of fields, or None")
    unknown = sorted(set(msg) - set(target.dtype.names))
    if unknown:
        raise ValueError(f"unknown field '{unknown[0]}' of message type {layout.ctype}")
    defaults = np.frombuffer(layout.default, target.dtype, count=1)[0]
    for name in target.dtype.names:
        try:
            target[name] = msg.get(name, defaults[name])
        except (OverflowError, TypeError, ValueError) as e:
            raise ValueError(f"field '{name}': {e}") from None


def copy_fields(target: np.ndarray, source: np.ndarray) -> None:
    """target[:] = source for structured columns of one dtype, field by
    field: NumPy copies whole structured rows several times slower."""
    for name in source.dtype.names:
        target[name] = source[name]


def expand(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranges [lo[i], hi[i]) of a CSR, flattened: for each position its
    range's row i and its offset from lo[i]."""
    counts = hi - lo
    rows = np.repeat(np.arange(len(lo)), counts)
    return rows, np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)


def record_dtype(layout) -> np.dtype:
    """A message record (psim/core/records.h pe_record, then the message) as a NumPy row."""
    return np.dtype([("src", "<u4"), ("send_index", "<u4"), ("pin", "<u2"), ("length", "<u2"),
                     ("msg", layout_dtype(layout))])


def layout_dtype(layout) -> np.dtype:
    """The NumPy dtype of a message layout (flat layouts of scalars)."""
    spec = layout.spec
    if not spec.flat:
        raise ValueError(f"{layout.ctype}: the batch API takes messages of scalar fields only")
    return np.dtype([(name, t.fmt) for name, t in spec.members]) if spec.members else np.dtype([])


def delivery_dtype(layout) -> np.dtype:
    """A batch's row: destination and source (device index, pin index), and
    the message's fields under "msg"."""
    return np.dtype([("dst", "<u4"), ("dst_pin", "<u2"), ("src", "<u4"), ("src_pin", "<u2"),
                     ("msg", layout_dtype(layout))])
