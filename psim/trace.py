"""Event traces (docs/tracing.md): recording a run's every send and
delivery and every input of its engines into a compact binary file,
reading it back with names and decoded messages, converting it to
graph-schema's event-log XML, and replaying exactly the recorded schedule.

A file is MAGIC then chunks: u8 type, u8 0, u16 region, u32 length, then
length bytes.  HEAD (JSON: format version, the application's path and
content hash, options, region count) comes first; PARTITION (the region
of every device, uint16 each) when the run was split; then, per region and
in its order, DATA chunks (the engine's packed records, core/trace.hpp)
and one END (JSON: the region's outcome and counters).  Chunks of
different regions may interleave.

Replay: a region's schedule is fixed by its seed, its order and its
inputs (remote record batches, hardware-idle rounds, the end-of-run call,
idle returns), each recorded with the engine's step count.  replay() runs
every region's engine in this process, one after the other, gives each its
inputs at exactly the recorded steps, and compares what it does with the
trace as it goes.
"""
from __future__ import annotations

import hashlib
import json
import struct
import time
from array import array
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from .engine import FAIL_TIMEOUT, IDLE, STOP_FAIL, STOPPED, SUP_DEV, SUPERVISOR, Engine, Options
from .errors import BadInput
from .reader import Instance, Source

MAGIC = b"PSTRACE\n"
VERSION = 1
HEAD, PARTITION, DATA, END = 1, 2, 3, 4
CHUNK = struct.Struct("<BxHI")              # type, region, length
EVENT = struct.Struct("<BBHIH")             # kind, source pin, pin, device, size
INPUT = struct.Struct("<BBxxIQ")            # kind, status, length, steps
SOURCE = struct.Struct("<I")
CANCELLED = 0xFFFF
NO_EDGE = 0xFFFFFFFF
INIT, SEND, RECV, SENT, DEVIDLE, HWIDLE = range(1, 7)                  # pe_event_kind
INJECT, HWROUND, FINISH, RETURN = range(16, 20)                   # pe_trace_input_kind
KINDS = {INIT: "init", SEND: "send", RECV: "recv", SENT: "sent", DEVIDLE: "device_idle",
         HWIDLE: "hardware_idle", INJECT: "inject", HWROUND: "hardware_idle_round", FINISH: "finish",
         RETURN: "return"}
OPTIONS = ("order", "seed", "max_steps", "level", "timeout")     # what a replay runs with again (timeout: a guard)
COUNTERS = ("delivered", "sends", "cancelled", "steps", "devidle_calls", "remote_sent", "remote_received",
            "remote_bytes")
BATCH = 1 << 20                              # steps per call while replaying


def app_hash(src: Source) -> str:
    """The application's content hash (of its XML, uncompressed)."""
    h = hashlib.sha256()
    with src.open() as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def chunk(kind: int, region: int, payload: bytes) -> bytes:
    return CHUNK.pack(kind, region, len(payload)) + payload


# ---- recording ---------------------------------------------------------------------

def head_chunks(inst: Instance, engine: Engine, opts: Options) -> bytes:
    """HEAD (and PARTITION, when split) of a trace of `engine`'s process."""
    src = inst.source
    head = {"format": "pstack trace", "version": VERSION, "app": str(src.path) if src.path else src.name,
            "source": src.name, "app_sha256": app_hash(src), "graph_type": inst.graph.id, "devices": inst.n_devices,
            "options": {k: getattr(opts, k) for k in OPTIONS},
            "regions": engine.n_regions if engine.region is not None else 1, "sup_region": engine.sup_region}
    out = chunk(HEAD, 0, json.dumps(head).encode())
    if engine.region is not None:
        out += chunk(PARTITION, 0, engine.region.tobytes())
    return out


def rename_app(chunks: bytes, name: str) -> bytes:
    """`chunks` (HEAD first) with the HEAD naming the application `name` (a
    cluster's region reads it as text: the process's record has its file name)."""
    kind, region, length = CHUNK.unpack_from(chunks)
    end = CHUNK.size + length
    value = json.loads(chunks[CHUNK.size:end])
    return chunk(kind, region, json.dumps({**value, "app": name or value["app"]}).encode()) + chunks[end:]


def record(engine: Engine, sink: Callable[[bytes], None]) -> None:
    """Trace `engine` from now on: its records go to sink as DATA chunks
    (whenever its logs are drained), then end_chunk() ends them."""
    region = engine.my_region if engine.region is not None else 0
    engine.start_trace(lambda data: sink(chunk(DATA, region, data)))


def end_chunk(engine: Engine, status: str, exit_code: int, error: str | None) -> bytes:
    """The END of `engine`'s region: how it ended and its counters."""
    engine.drain_trace()
    o = engine.outcome()
    end = {"status": status, "exit_code": exit_code, "error": error, "stop": o.stop, "fail_kind": o.fail_kind,
           **{k: getattr(o, k) for k in COUNTERS}}
    region = engine.my_region if engine.region is not None else 0
    return chunk(END, region, json.dumps(end).encode())


class FileSink:
    """A trace file being written: MAGIC, then the chunks given to it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.f: BinaryIO = open(self.path, "wb")
        except OSError as e:
            raise BadInput(f"trace: cannot write {path}: {e.strerror}") from None
        self.f.write(MAGIC)

    def __call__(self, data: bytes) -> None:
        self.f.write(data)

    def close(self) -> None:
        self.f.close()


# ---- reading -------------------------------------------------------------------------

@dataclass
class Record:
    """One record of a region's trace.  Events: device, pin, message
    (bytes), and for a delivery its source (device and output pin, NO_EDGE
    when it came over no edge); inputs: steps and body."""
    index: int                   # in its region's trace
    kind: int
    device: int = 0
    pin: int = 0
    message: bytes | None = None  # None: a cancelled send, or no message
    source: int = NO_EDGE
    source_pin: int = 0xFF
    steps: int = 0
    status: int = 0              # RETURN: the engine's status (idle or stopped)
    raw: bytes = b""             # the record as the engine wrote it

    @property
    def name(self) -> str:
        return KINDS.get(self.kind, f"kind {self.kind}")


class TraceFile:
    """A trace file: its header, and each region's records (read as they
    are iterated, never the whole file at once)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.head: dict = {}
        self.partition: array | None = None
        self.data: dict[int, list[tuple[int, int]]] = defaultdict(list)     # region -> (offset, length)
        self.ends: dict[int, dict] = {}
        self._index()

    def bad(self, detail: str) -> BadInput:
        return BadInput(f"trace {self.path}: {detail}")

    def _index(self) -> None:
        try:
            f = open(self.path, "rb")
        except OSError as e:
            raise self.bad(e.strerror) from None
        with f:
            if f.read(len(MAGIC)) != MAGIC:
                raise self.bad("not a pstack trace (it does not start with the trace header)")
            size = self.path.stat().st_size
            at = len(MAGIC)
            while at < size:
                head = f.read(CHUNK.size)
                if len(head) < CHUNK.size:
                    raise self.bad(f"truncated: a chunk header at byte {at} is cut short")
                kind, region, length = CHUNK.unpack(head)
                at += CHUNK.size
                if at + length > size:
                    raise self.bad(f"truncated: the chunk at byte {at - CHUNK.size} needs {length} bytes, "
                                   f"the file has {size - at}")
                self._chunk(f, kind, region, at, length)
                at += length
                f.seek(at)
        self._check()

    def _chunk(self, f: BinaryIO, kind: int, region: int, at: int, length: int) -> None:
        if kind == DATA:
            self.data[region].append((at, length))
        elif kind == HEAD:
            self.head = self._json(f.read(length), "header")
        elif kind == PARTITION:
            self.partition = array("H", f.read(length))
        elif kind == END:
            self.ends[region] = self._json(f.read(length), f"end of region {region}")
        else:
            raise self.bad(f"unknown chunk type {kind} at byte {at - CHUNK.size}")

    def _json(self, raw: bytes, what: str) -> dict:
        try:
            value = json.loads(raw)
        except ValueError:
            raise self.bad(f"its {what} is not JSON (corrupted)") from None
        if not isinstance(value, dict):
            raise self.bad(f"its {what} is not a JSON object (corrupted)")
        return value

    def _check(self) -> None:
        if not self.head:
            raise self.bad("no header chunk")
        if self.head.get("version") != VERSION:
            raise self.bad(f"format version {self.head.get('version')!r}; this psim reads version {VERSION}")
        if not self.ends:
            raise self.bad("no region recorded its end: the file was cut short, or the run was killed")
        if self.regions > 1 and (self.partition is None or len(self.partition) != self.head["devices"]):
            raise self.bad("a split run's trace without the region of every device")

    @property
    def unended(self) -> list[int]:
        """Regions without an end record: stopped as another region failed, before they could record it."""
        return [r for r in range(self.regions) if r not in self.ends]

    @property
    def regions(self) -> int:
        return int(self.head.get("regions", 1))

    @property
    def options(self) -> Options:
        return Options.from_dict(self.head.get("options"))

    def raw(self, region: int) -> Iterator[bytes]:
        """The region's DATA, chunk by chunk."""
        with open(self.path, "rb") as f:
            for at, length in self.data.get(region, []):
                f.seek(at)
                yield f.read(length)

    def records(self, region: int) -> Iterator[Record]:
        """The region's records, in order (a record may span chunks)."""
        buf, at, index = b"", 0, 0
        for data in self.raw(region):
            buf = buf[at:] + data
            at = 0
            while True:
                rec, used = self._checked(region, index, lambda: parse(buf, at, index))
                if rec is None:
                    break
                yield rec
                at += used
                index += 1
        if at != len(buf):
            raise self.bad(f"region {region}'s records end in the middle of one (corrupted)")

    def inputs(self, region: int, counted: list[int]) -> Iterator[Record]:
        """The region's inputs, skipping its events unparsed (fast);
        counted[0] ends as the number of records."""
        buf, at, index = b"", 0, 0
        for data in self.raw(region):
            buf = buf[at:] + data
            at = 0
            while True:
                used = self._checked(region, index, lambda: record_size(buf, at))
                if not used:
                    break
                if buf[at] >= INJECT:
                    yield parse(buf, at, index)[0]
                at += used
                index += 1
        if at != len(buf):
            raise self.bad(f"region {region}'s records end in the middle of one (corrupted)")
        counted[0] = index

    def _checked(self, region: int, index: int, read: Callable):
        """read() (a record's parse), a corrupted one named as the file's."""
        try:
            return read()
        except ValueError as e:
            raise self.bad(f"region {region}, record {index}: {e} (corrupted)") from None

    def check_app(self, src: Source) -> None:
        """BadInput unless `src` is the application the trace was recorded from."""
        digest = app_hash(src)
        if digest != self.head.get("app_sha256"):
            raise self.bad(f"recorded from another application: {self.head.get('app')} (content hash "
                           f"{str(self.head.get('app_sha256'))[:12]}...), not {src.name} ({digest[:12]}...)")


def record_size(buf: bytes, at: int) -> int:
    """The length of the record at buf[at:], or 0 if buf ends before it does."""
    left = len(buf) - at
    if left and not (INIT <= buf[at] <= HWIDLE or INJECT <= buf[at] <= RETURN):
        raise ValueError(f"unknown record kind {buf[at]}")
    if left >= INPUT.size and buf[at] >= INJECT:
        used = INPUT.size + INPUT.unpack_from(buf, at)[2]
    elif left >= EVENT.size:
        kind, _, _, _, size = EVENT.unpack_from(buf, at)
        used = EVENT.size + (SOURCE.size if kind == RECV else 0) + (0 if size == CANCELLED else size)
    else:
        return 0
    return used if used <= left else 0


class ByteStream:
    """Bytes of an iterator of chunks, taken in any sizes."""

    def __init__(self, chunks: Iterator[bytes]):
        self.chunks, self.buf = chunks, b""

    def take(self, n: int) -> bytes:
        while len(self.buf) < n:
            more = next(self.chunks, None)
            if more is None:
                break
            self.buf += more
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def parse(buf: bytes, at: int, index: int) -> tuple[Record | None, int]:
    """The record at buf[at:] and its length, or (None, 0) if buf ends before it does."""
    if len(buf) - at < 1:
        return None, 0
    kind = buf[at]
    if kind >= INJECT:
        if len(buf) - at < INPUT.size:
            return None, 0
        kind, status, length, steps = INPUT.unpack_from(buf, at)
        used = INPUT.size + length
        if len(buf) - at < used:
            return None, 0
        return Record(index, kind, status=status, steps=steps, message=buf[at + INPUT.size:at + used],
                      raw=buf[at:at + used]), used
    if not INIT <= kind <= HWIDLE:
        raise ValueError(f"unknown record kind {kind}")
    if len(buf) - at < EVENT.size:
        return None, 0
    kind, src_pin, pin, dev, size = EVENT.unpack_from(buf, at)
    extra = SOURCE.size if kind == RECV else 0
    body = 0 if size == CANCELLED else size
    used = EVENT.size + extra + body
    if len(buf) - at < used:
        return None, 0
    source = SOURCE.unpack_from(buf, at + EVENT.size)[0] if extra else NO_EDGE
    message = buf[at + EVENT.size + extra:at + used] if size != CANCELLED and kind in (RECV, SENT) else None
    return Record(index, kind, dev, pin, message, source, src_pin if extra else 0xFF,
                  raw=buf[at:at + used]), used


# ---- names and messages ---------------------------------------------------------------

class Names:
    """Device ids, pin names and decoded messages of one instance."""

    def __init__(self, inst: Instance):
        from .build import loader_module
        ll = loader_module()
        self.inst = inst
        self.types = list(inst.graph.devices.values())
        self.dev_type = ll.ffi.unpack(ll.lib.pl_dev_types(inst.loader), inst.n_devices) if inst.n_devices else []

    def device(self, dev: int) -> str:
        if dev == SUP_DEV:
            return SUPERVISOR
        return self.inst.ids[dev] if dev < self.inst.n_devices else f"#{dev}"

    def _pins(self, dev: int, output: bool):
        if dev >= self.inst.n_devices:
            return []
        t = self.types[self.dev_type[dev]]
        return t.outputs if output else t.inputs

    def pin(self, dev: int, pin: int, output: bool):
        pins = self._pins(dev, output)
        return pins[pin] if pin < len(pins) else None

    def describe(self, rec: Record) -> dict:
        """The record as plain data: kind, device, pin, message fields, source."""
        out: dict = {"index": rec.index, "kind": rec.name}
        if rec.kind >= INJECT:
            out["steps"] = rec.steps
            if rec.kind == INJECT:
                out["bytes"] = len(rec.message or b"")
            return out
        out["device"] = self.device(rec.device)
        if rec.kind in (SEND, SENT, RECV):
            p = self.pin(rec.device, rec.pin, rec.kind != RECV)
            out["pin"] = p.name if p else f"#{rec.pin}"
            if rec.kind == SENT:
                out["cancelled"] = rec.message is None
            if rec.message is not None and p is not None:
                out["message"] = p.message.layout.unpack(rec.message)
        if rec.kind == RECV:
            if rec.source == NO_EDGE:
                out["source"] = None
            else:
                sp = self.pin(rec.source, rec.source_pin, True)
                out["source"] = f"{self.device(rec.source)}:{sp.name if sp else rec.source_pin}"
        return out

    def text(self, rec: Record | None) -> str:
        if rec is None:
            return "nothing (the trace ends)"
        d = self.describe(rec)
        words = [d["kind"]]
        if "device" in d:
            words.append(d["device"] + (f":{d['pin']}" if "pin" in d else ""))
        if d.get("source"):
            words.append(f"from {d['source']}")
        if "message" in d:
            words.append(json.dumps(d["message"]))
        if d.get("cancelled"):
            words.append("(cancelled)")
        if "steps" in d:
            words.append(f"at step {d['steps']}")
        return " ".join(words)


def open_app(trace: TraceFile, app: str | Path | None) -> Source:
    """The application of a trace: `app`, else the path it names, checked by hash."""
    where = app or trace.head.get("app")
    try:
        src = Source(where)
    except BadInput:
        raise trace.bad(f"its application {where} is not there: give the application file") from None
    trace.check_app(src)
    return src


def events(path: str | Path, app: str | Path | None = None) -> Iterator[dict]:
    """Every record of a trace, region by region, as plain data (Names.describe)
    with its region: device ids, pin names, message fields."""
    from .run import load_instance
    trace = TraceFile(path)
    names = Names(load_instance(open_app(trace, app)))
    for region in range(trace.regions):
        for rec in trace.records(region):
            yield {"region": region, **names.describe(rec)}


# ---- graph-schema's event log ------------------------------------------------------------

GRAPH_LOG_NS = "https://poets-project.org/schemas/virtual-graph-schema-v3"


def to_xml(path: str | Path, out: str | Path, app: str | Path | None = None) -> int:
    """Write the trace as graph-schema's event log (GraphLog): one InitEvent,
    SendEvent (a send and its OnSend), RecvEvent, DeviceIdleEvent or
    HardwareIdleEvent per event; inputs are left out.  A delivery names the
    send it came from (sendEventId): the earliest send of its source pin
    with the same bytes not yet delivered over its edge.  The trace holds no
    states or ready-to-send flags: events have no S and no rts.  Returns
    the number of events written."""
    from lxml import etree
    from .run import load_instance
    trace = TraceFile(path)
    inst = load_instance(open_app(trace, app))
    names = Names(inst)
    fanout = _fanout(inst, names)
    sends = _send_ids(trace)
    seq: dict[int, int] = defaultdict(int)
    written = 0
    with etree.xmlfile(str(out), encoding="utf-8") as xf:
        xf.write_declaration()
        with xf.element("GraphLog", nsmap={None: GRAPH_LOG_NS}, graphTypeId=trace.head["graph_type"]):
            for region, rec, send in _attributed(trace, sends):
                el = _xml_event(names, region, rec, send, fanout, seq)
                if el is not None:
                    el.set("time", str(written))
                    xf.write(el)
                    written += 1
    return written


def _fanout(inst: Instance, names: Names) -> Callable[[int, int], int]:
    """fanout(device, pin): how many edges a send goes to (an indexed pin's
    and a supervisor pin's: one)."""
    from .topology import Wiring, finish_edges
    finish_edges(inst, None, 0)
    wiring = Wiring(inst)
    out_off = wiring.out_off.tolist()         # a list: read once per send below

    def fanout(dev: int, pin: int) -> int:
        p = names.pin(dev, pin, True)
        if p is None or p.indexed or p.supervisor:
            return 1
        k = wiring.key(dev, pin)
        return out_off[k + 1] - out_off[k]
    return fanout


def _event_id(region: int, index: int) -> str:
    return f"{region}.{index}"


def _send_ids(trace: TraceFile) -> dict:
    """(source, pin, message bytes) -> ids of its sends, in order."""
    sends: dict = defaultdict(list)
    for region in range(trace.regions):
        for rec in trace.records(region):
            if rec.kind == SENT and rec.message is not None:
                sends[(rec.device, rec.pin, rec.message)].append(_event_id(region, rec.index))
    return sends


def _attributed(trace: TraceFile, sends: dict) -> Iterator[tuple[int, Record, str]]:
    """Every record with its region, and for a delivery the id of its send ("" if unknown)."""
    taken: dict = defaultdict(int)
    for region in range(trace.regions):
        for rec in trace.records(region):
            send = ""
            if rec.kind == RECV:
                key = (rec.source, rec.source_pin, rec.message)
                ids, edge = sends.get(key, []), (key, rec.device, rec.pin)
                send = ids[taken[edge]] if taken[edge] < len(ids) else ""
                taken[edge] += 1
            yield region, rec, send


def _xml_event(names: Names, region: int, rec: Record, send: str, fanout: Callable[[int, int], int], seq: dict):
    from lxml import etree
    tag = {INIT: "InitEvent", SENT: "SendEvent", RECV: "RecvEvent", DEVIDLE: "DeviceIdleEvent",
           HWIDLE: "HardwareIdleEvent"}.get(rec.kind)
    if tag is None:                      # SEND: its SENT says it all; inputs are not events
        return None
    event_id = _event_id(region, rec.index)
    el = etree.Element(tag, eventId=event_id, elapsed="0", dev=names.device(rec.device), seq=str(seq[rec.device]))
    seq[rec.device] += 1
    d = names.describe(rec)
    if rec.kind == SENT:
        el.set("pin", d["pin"])
        el.set("cancel", "1" if rec.message is None else "0")
        el.set("fanout", str(fanout(rec.device, rec.pin) if rec.message is not None else 0))
        if "message" in d:               # the message is on the send side only (graph-schema's rule)
            etree.SubElement(el, "M").text = json.dumps(d["message"])[1:-1]
    elif rec.kind == RECV:
        el.set("pin", d["pin"])
        el.set("sendEventId", send)
    elif rec.kind == HWIDLE:
        el.set("barrierId", str(region))
    return el


# ---- replay ------------------------------------------------------------------------------

def _text(src: Source) -> str:
    """The application as text: a run that read it so (a cluster's region)
    names it "<string>" in its errors, and so must its replay."""
    with src.open() as f:
        return f.read().decode()


class Diverged(Exception):
    """The replay did not do what the trace says."""


class RegionReplay:
    """One region's engine fed its recorded inputs at their steps, its
    records compared with the trace's as they come."""

    def __init__(self, trace: TraceFile, region: int, engine: Engine, names: Names):
        self.trace, self.region, self.engine, self.names = trace, region, engine, names
        self.expected = ByteStream(trace.raw(region))
        self.pos = 0                  # bytes of the trace the replay has matched
        self.counted = [0]            # records in the trace (once its inputs are all read)
        self.log: list = []
        self.rounds = 0
        self.returned = False         # the engine's last run returned idle or stopped (a RETURN record)
        self.end = trace.ends.get(region)    # None: the region was stopped without one (unended)
        self.tail = False                    # an unended region's trace is all matched
        self.timed_out = bool(self.end) and self.end["fail_kind"] == FAIL_TIMEOUT   # the clock's: replayed up to there
        timeout = engine.opts.timeout
        self.deadline = time.monotonic() + timeout if timeout else None
        engine.start_trace(self._compare)

    def _left(self) -> float:
        """Seconds left of the recorded run's timeout (0: none): a replay that hangs ends too."""
        return max(self.deadline - time.monotonic(), 1e-6) if self.deadline else 0.0

    def run(self) -> None:
        engine = self.engine
        engine.start(self._left())
        self._drain()
        for rec in self.trace.inputs(self.region, self.counted):
            self._advance(rec.steps)
            if rec.kind == RETURN:
                if self.timed_out and rec.status == STOPPED:
                    return                    # the clock stopped the recorded run here
                if not self.returned:         # else the run that got here returned already
                    engine.run(1, self._left())
            elif rec.kind == INJECT:
                engine.inject(rec.message)
            elif rec.kind == HWROUND:
                engine.hardware_idle(self._left())
                self.rounds += 1
            else:
                engine.finish(self._left())
            self._drain()
            self.returned = False
        if self.end is None:
            return self._run_out()
        self._advance(int(self.end["steps"]))
        self._drain()
        if self.expected.take(1) and not self.timed_out:    # a handler the clock stopped left its event behind
            self._diverged(b"")

    def _run_out(self) -> None:
        """An unended region: on until its trace is all matched (what it did
        after, before it was stopped, is not known)."""
        while not self.tail:
            status = self.engine.run(BATCH, self._left())
            self._drain()
            if status in (IDLE, STOPPED) and not self.tail:
                self._diverged(b"")

    def _advance(self, steps: int) -> None:
        """Run the engine up to `steps` steps (it stops earlier only if it idles or stops)."""
        engine = self.engine
        while engine.outcome().steps < steps:
            status = engine.run(min(BATCH, steps - engine.outcome().steps), self._left())
            for q in range(engine.n_regions):
                engine.clear_outbox(q)        # its records went out in the recorded run: the inputs hold theirs
            self._drain()
            self.returned = status in (IDLE, STOPPED)
            if self.returned:
                break

    def _drain(self) -> None:
        self.log += [list(entry) for entry in self.engine.logs()]
        self.engine.drain_trace()

    def _compare(self, data: bytes) -> None:
        """The replay's records `data` must be the trace's next bytes (both
        start at a record: the comparison is of whole blocks)."""
        if self.tail:
            return
        want = self.expected.take(len(data))
        if self.end is None and len(want) < len(data):
            self.tail, data = True, data[:len(want)]
        if want != data:
            self._diverged(data)
        self.pos += len(data)

    def _diverged(self, data: bytes) -> None:
        """Name the first record of `data` (the replay's, from self.pos on)
        that is not the trace's (read again from the file: only now)."""
        records, at = self.trace.records(self.region), 0
        want = next(records, None)
        while want is not None and at < self.pos:
            at += len(want.raw)
            want = next(records, None)
        at = 0
        while True:
            got, used = parse(data, at, want.index if want else 0)
            if want is None or got is None or want.raw != got.raw:
                break
            at += used
            want = next(records, None)
        index = want.index if want is not None else self.counted[0]
        raise Diverged(f"replay diverged at event {index} in region {self.region}: expected "
                       f"{self.names.text(want)}, got {self.names.text(got) if got else 'nothing more'}")

    def check_end(self) -> None:
        """The engine ended as the recorded one did: stop, failure and counters."""
        end, o = self.end, self.engine.outcome()
        for k in ("stop", "fail_kind", *COUNTERS) if not self.timed_out else COUNTERS:
            if int(end.get(k, 0)) != int(getattr(o, k)):
                raise Diverged(f"replay diverged at the end of region {self.region}: {k} is {getattr(o, k)}, "
                               f"the trace says {end.get(k)}")


def replay(path: str | Path, app: str | Path | None = None) -> dict:
    """Run the recorded schedule again: psim's result (regions merged as
    pcli.result merges a process's).  Raises BadInput for a bad trace or
    the wrong application, Diverged when the run does not follow it."""
    from .run import Loaded, Outcome, result
    trace = TraceFile(path)
    src = open_app(trace, app)
    opts = trace.options
    results, records = {}, 0
    for region in range(trace.regions):
        loaded = Loaded(src.path if src.name == trace.head["source"] else _text(src), watchers=True)
        names = Names(loaded.instance)
        if trace.regions > 1:
            rmap = {SUPERVISOR: int(trace.head["sup_region"])} if loaded.instance.graph.supervisor else {}
            engine = loaded.engine(Options(**{**vars(opts), "region": region}), rmap, trace.partition,
                                   trace.regions)
        else:
            engine = loaded.engine(opts)
        rep = RegionReplay(trace, region, engine, names)
        rep.run()
        records += rep.counted[0]
        end = trace.ends.get(region)
        if end is None:                      # checked as far as it goes; no result, as in the process's
            continue
        rep.check_end()
        failed = engine.outcome().stop == STOP_FAIL and end["fail_kind"] != FAIL_TIMEOUT
        out = Outcome(end["status"], int(end["exit_code"]), engine.failure(engine.outcome()) if failed else
                      end.get("error"), rep.rounds, 0.0)
        results[region] = result(loaded, engine, out, rep.log)
    if trace.regions == 1:
        res = results[0]
    else:
        from pcli.api import merge           # the layer above psim: imported only for a split run
        res = merge(results)
    res["replay"] = {"records": records, "regions": trace.regions, "unended": trace.unended}
    return res
