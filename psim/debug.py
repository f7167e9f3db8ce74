"""The debugger in a region (docs/debugging.md): what a breakpoint is, and
the agent that serves a debugger's requests against one C engine.

The C side (core/debug.hpp) stops the engine before a handler runs by
calling the agent (`_on_stop`), which hands the stop to its owner's
`pause` (pd/region.py: it serves debugger requests until told to go on),
then lets the event run.  Breakpoints are matched in C on device, type,
pin and handler kind; a `when` condition is a Python expression over the
device's state, properties and the message, checked here only for the
events C matched.  A run with no debugger attached pays nothing here.
"""
from __future__ import annotations

import ast
import struct
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

from .engine import SUPERVISOR, Engine
from .topology import REMOTE, Wiring

# pe_event_kind (engine_base.hpp) by handler name, and pe_stop_reason
INIT, SEND, RECV, SENT, DEVIDLE, HWIDLE = range(1, 7)
HANDLERS = {"init": INIT, "send": SEND, "receive": RECV, "device_idle": DEVIDLE, "hardware_idle": HWIDLE}
ALIASES = {"oninit": "init", "onsend": "send", "onreceive": "receive", "recv": "receive",
           "ondeviceidle": "device_idle", "onhardwareidle": "hardware_idle"}
KIND_NAMES = {v: k for k, v in HANDLERS.items()}
REASONS = {1: "break", 2: "step"}
ANY = 0xFFFFFFFF
_ALL_KINDS = sum(1 << k for k in HANDLERS.values())
_INJECTED = struct.Struct("<IIHH")          # pe_injected's head (debug.hpp)
_RECORD = struct.Struct("<IIHH")            # pe_record (records.h)


class DebugError(Exception):
    """A debugger request that cannot be done; the message says why."""


@dataclass
class Breakpoint:
    """Stop before a handler runs, on a device (or any of a device type),
    a pin, a handler kind, when `when` (a Python expression over the
    device's state and properties fields, `msg` for the message, `device`,
    `pin`) is true.  Fields left None match everything."""
    device: str | None = None
    pin: str | None = None
    handler: str | None = None
    when: str | None = None
    type: str | None = None

    def __post_init__(self) -> None:
        if self.handler is not None:
            h = ALIASES.get(self.handler.lower().replace("_", ""), self.handler.lower())
            if h not in HANDLERS:
                raise DebugError(f"no handler kind '{self.handler}': one of {', '.join(HANDLERS)}")
            self.handler = h
        if self.when is not None:
            try:
                ast.parse(self.when, mode="eval")
            except SyntaxError as e:
                raise DebugError(f"condition '{self.when}' is not a Python expression: {e.msg}") from None

    def __str__(self) -> str:
        where = f"{self.device or '*'}" + (f":{self.pin}" if self.pin else "")
        parts = [where] + [f"{k}={v}" for k, v in (("type", self.type), ("handler", self.handler)) if v]
        return " ".join(parts) + (f" if {self.when}" if self.when else "")

    def to_dict(self) -> dict:
        return asdict(self)


def parse_break(text: str) -> Breakpoint:
    """A breakpoint from the shell's and psim's syntax:
    `[DEVICE|*][:PIN] [type=TYPE] [handler=KIND] [if CONDITION]`,
    e.g. `n2:toggle_in if counter == 5`."""
    text = " " + text.strip()
    head, _, when = text.partition(" if ")
    target, opts = None, {}
    for word in head.split():
        key, eq, value = word.partition("=")
        if eq and key in ("type", "handler"):
            opts[key] = value
        elif target is None and not eq:
            target = word
        else:
            raise DebugError(f"breakpoint '{text.strip()}': expected [DEVICE][:PIN] [type=T] [handler=H] "
                             "[if CONDITION]")
    device, _, pin = (target or "").partition(":")
    return Breakpoint(device=None if device in ("", "*") else device, pin=pin or None,
                      handler=opts.get("handler"), when=when.strip() or None, type=opts.get("type"))


class Agent:
    """Serves a debugger's requests in the region of one C engine.  `pause(where)`
    is called when the engine stops (inside the event, before its handler)
    and returns when the debugger lets it go on."""

    def __init__(self, engine: Engine, pause: Callable[[dict], None]):
        engine.require_watchers("debugged")
        self.engine, self.pause = engine, pause
        self.lib, self.ffi, self.E = engine.lib, engine.ffi, engine.engine
        self.types = list(engine.inst.graph.devices.values())
        self.wiring = Wiring(engine.inst)         # the engine indexed its edges already
        self.dev_type = self.wiring.types
        self.slot = _slots(self.dev_type, len(self.types))
        self.index: dict[str, int] | None = None
        self.breakpoints: list[tuple[int, Breakpoint]] = []    # (the debugger's number, breakpoint)
        self.quad_owner: list[int] = []                         # index in breakpoints of each C match
        self.inside = False                   # stopped inside an event, its handler not run yet
        self.stepping = False                 # resumed for a number of events
        self.error: BaseException | None = None
        self._stop_fn = self.ffi.callback("pe_stop_fn", self._on_stop)
        self.lib.pe_debug_attach(self.E, self._stop_fn, self.ffi.NULL)

    # ---- running ---------------------------------------------------------------------

    def resume(self, steps: int | None = None) -> None:
        """Go on: to the next breakpoint, or for `steps` events.  Stopped
        inside an event, that event is the first of them."""
        self.stepping = steps is not None
        left = max((steps or 0) - (1 if self.inside else 0), 0)
        self.lib.pe_debug_run(self.E, int(self.stepping), left)

    def events(self) -> int:
        """Events this region has run (the one it is stopped at not counted)."""
        return int(self.lib.pe_events(self.E))

    def set_breaks(self, points: list[dict]) -> None:
        """The breakpoints, each {"number", and Breakpoint's fields}."""
        bps = [(p.pop("number"), Breakpoint(**p)) for p in map(dict, points)]
        quads, owner = [], []
        for i, (_, bp) in enumerate(bps):
            for q in self._quads(bp):
                quads.extend(q)
                owner.append(i)
        self.breakpoints, self.quad_owner = bps, owner
        self.lib.pe_debug_breaks(self.E, self.ffi.new("uint32_t[]", quads or [0]), len(owner))

    def _quads(self, bp: Breakpoint) -> list[tuple[int, int, int, int]]:
        """C matches (device, type, pin, kinds) for a breakpoint: one per
        device type and pin direction its pin name stands for."""
        kinds = (1 << HANDLERS[bp.handler]) if bp.handler else _ALL_KINDS
        dev = ANY
        types = self.types
        if bp.device is not None:
            d = self.find(bp.device)
            if d is None:
                return []                         # not in this region
            dev, types = d, [self.types[self.dev_type[d]]]
        if bp.type is not None:
            types = [t for t in types if t.id == bp.type]
        out = []
        for t in types:
            if bp.pin is None:
                out.append((dev, t.index, ANY, kinds))
                continue
            for pins, kind in ((t.inputs, RECV), (t.outputs, SEND)):
                pin = next((p for p in pins if p.name == bp.pin), None)
                if pin is not None and kinds >> kind & 1:
                    out.append((dev, t.index, pin.index, 1 << kind))
        return out

    def _on_stop(self, ctx, reason, bp, kind, dev, pin, msg, size) -> int:
        try:
            ev = self._event(kind, dev, pin, msg)
            number, point = self.breakpoints[self.quad_owner[bp]] if bp >= 0 else (None, None)
            if point is not None and not self._holds(point, dev, ev):
                return 0
            self.inside, self.stepping = True, False
            try:
                self.pause({"reason": REASONS[reason], "breakpoint": number, "event": ev, "events": self.events()})
            finally:
                self.inside = False
        except BaseException as e:               # never into C: the region raises it after the batch
            self.error = self.error or e
        return 1

    def _holds(self, bp: Breakpoint, dev: int, ev: dict) -> bool:
        if bp.when is None:
            return True
        names = {**self.props_of(dev), **self.state_of(dev), "device": ev["device"], "pin": ev.get("pin"),
                 "msg": SimpleNamespace(**ev.get("message", {}))}
        try:
            return bool(eval(bp.when, {"__builtins__": {}}, names))  # the user's own expression, in their own run
        except Exception:
            return False                           # e.g. a field this device type lacks

    def _event(self, kind: int, dev: int, pin: int, msg) -> dict:
        t = self.types[self.dev_type[dev]]
        ev: dict[str, Any] = {"handler": KIND_NAMES.get(kind, str(kind)), "device": self.engine.inst.ids[dev],
                              "type": t.id}
        if kind == RECV:
            p = t.inputs[pin]
            ev["pin"] = p.name
            size = p.message.layout.size
            ev["message"] = p.message.layout.unpack(bytes(self.ffi.buffer(msg, size))) if size else {}
        elif kind == SEND:
            ev["pin"] = t.outputs[pin].name
        return ev

    # ---- requests --------------------------------------------------------------------

    def find(self, device: str) -> int | None:
        """The index of `device` if this region holds it."""
        if device == SUPERVISOR:
            return None
        if self.index is None:
            self.index = {d: i for i, d in enumerate(self.engine.inst.ids)}
        i = self.index.get(device)
        return i if i is not None and self.engine.local(i) else None

    def device(self, device: str) -> int:
        i = self.find(device)
        if i is None:
            raise DebugError(f"no device '{device}' here")
        return i

    def state_of(self, dev: int) -> dict:
        t = self.types[self.dev_type[dev]]
        size = t.state.size
        return t.state.unpack(self.engine.inst.state[t.index], int(self.slot[dev]) * size) if size else {}

    def props_of(self, dev: int) -> dict:
        t = self.types[self.dev_type[dev]]
        size = t.props.size
        return t.props.unpack(self.engine.inst.props[t.index], int(self.slot[dev]) * size) if size else {}

    def set_state(self, device: str, fields: dict) -> dict:
        dev = self.device(device)
        t = self.types[self.dev_type[dev]]
        unknown = set(fields) - set(t.state.spec.offsets)
        if unknown:
            raise DebugError(f"device type '{t.id}' has no state field {', '.join(sorted(unknown))}")
        at = int(self.slot[dev]) * t.state.size
        self.engine.inst.state[t.index][at:at + t.state.size] = t.state.pack({**self.state_of(dev), **fields})
        self.lib.pe_debug_touch(self.E, dev)      # its ReadyToSend is asked again before the next event
        return self.state_of(dev)

    def inject(self, device: str, pin: str, fields: dict) -> None:
        """Deliver a message to the device's input pin before the next event, as if sent."""
        dev = self.device(device)
        t = self.types[self.dev_type[dev]]
        p = t.input(pin)
        if p is None:
            raise DebugError(f"device '{device}' (type '{t.id}') has no input pin '{pin}': "
                             f"it has {', '.join(q.name for q in t.inputs) or 'none'}")
        data = p.message.layout.pack(fields)
        err = self.lib.pe_debug_inject(self.E, dev, p.index, self._edge_slot(dev, p.index), data, len(data))
        if err != self.ffi.NULL:
            raise DebugError(self.ffi.string(err).decode())

    def _edge_slot(self, dev: int, pin: int) -> int:
        """The edge-data slot of the first edge into (dev, pin): an injected
        message reads that edge's properties and state."""
        edges = self.wiring.edges
        into = np.flatnonzero((edges["dst"] == dev) & (edges["dst_pin"] == pin))
        return int(edges["slot"][into[0]]) if len(into) else 0

    def pending(self, device: str) -> list[dict]:
        """Messages waiting for the device: injected ones, in random order
        those in flight (the pool), and records from other regions not yet
        taken (the inbox)."""
        dev = self.device(device)
        t = self.types[self.dev_type[dev]]
        out = [{"pin": t.inputs[pin].name, "message": t.inputs[pin].message.layout.unpack(msg), "source": src}
               for pin, msg, src in self._waiting(dev)]
        return out

    def _waiting(self, dev: int):
        ffi, lib, E = self.ffi, self.lib, self.E
        data, entry = ffi.new("uint8_t**"), ffi.new("size_t*")
        n = lib.pe_debug_queued(E, data, entry)
        raw = bytes(ffi.buffer(data[0], n * entry[0])) if n else b""
        for k in range(n):
            d, _, pin, size = _INJECTED.unpack_from(raw, k * entry[0])
            if d == dev:
                at = k * entry[0] + _INJECTED.size
                yield pin, raw[at:at + size], "(injected)"
        n = lib.pe_debug_pool(E, data, entry)
        if n:
            edges = self.wiring.edges
            raw = bytes(ffi.buffer(data[0], n * entry[0]))
            for k in range(n):
                at = k * entry[0]
                e = edges[int.from_bytes(raw[at:at + 4], "little")]
                if e["dst"] == dev:
                    yield int(e["dst_pin"]), raw[at + 4:], "(in flight)"
        yield from self._inbox(dev)

    def _inbox(self, dev: int):
        """Records from other regions not taken yet that reach `dev`."""
        ffi, data = self.ffi, self.ffi.new("uint8_t**")
        n = self.lib.pe_debug_inbox(self.E, data)
        if not n:
            return
        raw, at = bytes(ffi.buffer(data[0], n)), 0
        w, ids = self.wiring, self.engine.inst.ids
        while at < n:
            src, send_index, pin, length = _RECORD.unpack_from(raw, at)
            body = raw[at + _RECORD.size:at + _RECORD.size + length]
            at += _RECORD.size + length
            if src >= len(ids):
                continue                          # from the supervisor
            k = w.key(src, pin)
            mine = w.edges[w.out_off[k]:w.out_off[k + 1]]
            if send_index != 0xFFFFFFFF:
                mine = mine[send_index:send_index + 1]
            for e in mine[(mine["dst"] == dev) & ((mine["flags"] & REMOTE) == 0)]:
                yield int(e["dst_pin"]), body, f"(from {ids[src]}, in the inbox)"

    def handle(self, op: str, args: dict) -> Any:
        """Answer one request; raises DebugError."""
        if op == "has":
            return self.find(args["device"]) is not None
        if op == "state":
            return self.state_of(self.device(args["device"]))
        if op == "props":
            return self.props_of(self.device(args["device"]))
        if op == "pending":
            return self.pending(args["device"])
        if op == "set_state":
            return self.set_state(args["device"], args["fields"])
        if op == "inject":
            return self.inject(args["device"], args["pin"], args["fields"])
        if op == "break":
            return self.set_breaks(args["points"])
        if op == "names":
            return self.names(args.get("prefix", ""), args.get("device"))
        raise DebugError(f"unknown request '{op}'")

    def names(self, prefix: str, device: str | None) -> list[str]:
        """For completion: device ids here starting with `prefix`, or the pins of `device`."""
        if device is not None:
            dev = self.find(device)
            if dev is None:
                return []
            t = self.types[self.dev_type[dev]]
            return sorted({p.name for p in t.inputs + t.outputs if p.name.startswith(prefix)})
        ids = self.engine.inst.ids
        return [d for i, d in enumerate(ids) if d.startswith(prefix) and self.engine.local(i)][:200]


def _slots(types: np.ndarray, n_types: int) -> np.ndarray:
    """Each device's index within its type's arrays."""
    slot = np.zeros(len(types), dtype=np.uint32)
    for t in range(n_types):
        mask = types == t
        slot[mask] = np.arange(int(mask.sum()), dtype=np.uint32)
    return slot
