"""A region's result record: what a region's worker records (the field
REGION of pstack:u:OWNER:p:PID:results) and pcli.result reads and merges.

Two forms (docs/protocol.md, "Results"):

- packed (what pd's regions record): one msgpack map
      {"format": 1, "status", "metrics", "log"?, "error"?,
       "states": [{"type": NAME, "devices": uint32 LE device indices,
                   "ids": the devices' ids, each NUL-terminated, "state": their packed states}, ...]}
  one entry per device type with devices in the region (external types
  left out); "state" holds each device's State in the type's packed layout
  (psim/typed.py), in "devices" order: the engine's own bytes, no per-device
  work to make them.  Decoding needs the graph type (the application's
  <GraphType>), and is done only when a reader asks for the states.
- JSON: psim's result shape, states decoded (Python application engines,
  the debugger's place).

A record that is neither, or whose arrays disagree, is refused with a
reason (check): a sandbox runs the application's handlers, so its record
is not trusted.
"""
from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
import orjson

from psim.build import loader_module
from psim.engine import Engine, unpack_states
from psim.model import GraphType

FORMAT = 1
STATE_FIELDS = ("type", "devices", "ids", "state")


def packed_states(engine: Engine) -> list[dict]:
    """The final states of the engine's local devices, per device type, as
    the packed record carries them: NumPy selects them, and their ids from
    the C loader's arena (no per-device Python, no Python strings)."""
    inst = engine.inst
    n = inst.n_devices
    if not n:
        return []
    ll = loader_module()
    st = ll.ffi.new("pl_state*")
    ll.lib.pl_export(inst.loader, st)
    arena = np.frombuffer(ll.ffi.buffer(st.arena, st.arena_len), np.uint8)      # each id NUL-terminated
    dev_types = np.frombuffer(ll.ffi.buffer(st.dev_type, 2 * n), np.uint16)
    owner = np.repeat(np.arange(n, dtype=np.uint32), np.diff(np.flatnonzero(arena == 0), prepend=-1))
    local = np.frombuffer(engine.region, np.uint16)[:n] == engine.my_region if engine.region is not None else None
    out = []
    for t, dt in enumerate(inst.graph.devices.values()):
        of_type = np.flatnonzero(dev_types == t)          # in slot order: the type's state array's order
        mine = local[of_type] if local is not None else slice(None)
        devices = of_type[mine]
        if dt.external or not len(devices):
            continue
        size = dt.state.size
        state = np.frombuffer(inst.state[t], np.uint8, len(of_type) * size).reshape(len(of_type), size)[mine]
        chosen = np.zeros(n, bool)
        chosen[devices] = True
        out.append({"type": dt.id, "devices": devices.astype("<u4").tobytes(),
                    "ids": arena[chosen[owner]].tobytes(), "state": state.tobytes()})
    return out


def pack(res: dict, states: list[dict]) -> bytes:
    """The packed record of psim's result `res` (its "states" left out) with `states` (packed_states)."""
    return msgpack.packb({"format": FORMAT, **{k: v for k, v in res.items() if k != "states"}, "states": states},
                         use_bin_type=True)


def is_json(data: bytes) -> bool:
    return data[:1] == b"{"


def unpack(data: bytes, region: int) -> dict:
    """A region's record, states left as they are (a dict when JSON, the
    packed list otherwise); ValueError naming the region if it is malformed."""
    try:
        rec = orjson.loads(data) if is_json(data) else msgpack.unpackb(data, raw=False)
    except (ValueError, msgpack.UnpackException) as e:
        raise ValueError(f"region {region}'s result is malformed ({e})") from None
    reason = _malformed(rec)
    if reason:
        raise ValueError(f"region {region}'s result is malformed: {reason}")
    return rec


def check(data: bytes) -> str | None:
    """Why a packed record is malformed (None: it is well formed)."""
    try:
        return _malformed(msgpack.unpackb(data, raw=False))
    except (ValueError, msgpack.UnpackException) as e:
        return f"not msgpack ({e})"


def _malformed(rec: Any) -> str | None:
    if not isinstance(rec, dict):
        return "not a map"
    if not isinstance(rec.get("metrics", {}), dict) or not isinstance(rec.get("log", []), list):
        return "metrics or log of the wrong kind"
    states = rec.get("states", {})
    if isinstance(states, dict):
        return None if "format" not in rec else "packed, with states not a list"
    if rec.get("format") != FORMAT or not isinstance(states, list):
        return f"unknown format {rec.get('format')!r}"
    for s in states:
        if not isinstance(s, dict) or set(s) != set(STATE_FIELDS) or not isinstance(s["type"], str) \
                or not all(isinstance(s[k], bytes) for k in STATE_FIELDS[1:]):
            return "a states entry is not {type, devices, ids, state}"
        count = len(s["devices"]) // 4
        if len(s["devices"]) % 4 or s["ids"].count(b"\0") != count or s["ids"][-1:] not in (b"", b"\0"):
            return f"type {s['type']}: {count} devices, but ids and indices disagree"
    return None


def decode_states(rec: dict, graph: GraphType, region: int, first: int | None = None) -> dict:
    """{device id: {field: value}} of an unpacked record (its first `first`
    devices, when given: nothing more is decoded); ValueError when its
    arrays do not fit the graph type's layouts."""
    states = rec.get("states", {})
    if isinstance(states, dict):
        return states
    out: dict = {}
    for s in states:
        if first is not None and len(out) >= first:
            break
        dt = graph.devices.get(s["type"])
        try:
            ids = s["ids"].decode().split("\0")[:-1]
        except UnicodeDecodeError:
            raise ValueError(f"region {region}'s result is malformed: ids of type {s['type']!r} are not UTF-8") \
                from None
        if dt is None or len(s["state"]) != len(ids) * dt.state.size:
            raise ValueError(f"region {region}'s result is malformed: its states of type {s['type']!r} do not fit "
                             "the application's device types")
        keep = len(ids) if first is None else min(len(ids), first - len(out))
        out.update(zip(ids[:keep], unpack_states(dt.state, s["state"][:keep * dt.state.size], keep)))
    return out
