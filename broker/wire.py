"""The data-plane wire format: every frame between regions is one msgpack
array  [kind, pid, source region, sequence, payload].

MSG payloads are batches of message records (psim/core/records.h, built and
consumed in C); control payloads are small msgpack maps.  See
docs/protocol.md, which is the contract for third-party engines.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import msgpack

MSG = 1        # payload: bytes, packed message records
STATUS = 2     # region -> coordinator: {"wave", "sent", "received", "sends"}, sent when idle
PROBE = 3      # coordinator -> regions: {"wave"}: report STATUS when next idle
HWIDLE = 4     # coordinator -> regions: {"round"}: run OnHardwareIdle, reply HWDONE, wait for RESUME
HWDONE = 5     # region -> coordinator: {"round"}
RESUME = 6     # coordinator -> regions: {}: carry on after OnHardwareIdle
STOP = 7       # coordinator -> regions: {"status": "exit" | "idle", "code"}: end now
EXIT = 8       # region -> coordinator: {"code"}: handler_exit (or equivalent) happened here

NAMES = {MSG: "MSG", STATUS: "STATUS", PROBE: "PROBE", HWIDLE: "HWIDLE", HWDONE: "HWDONE",
         RESUME: "RESUME", STOP: "STOP", EXIT: "EXIT"}


class Frame(NamedTuple):
    kind: int
    pid: int
    source: int
    seq: int
    payload: Any


def pack(kind: int, pid: int, source: int, seq: int, payload: Any) -> bytes:
    return msgpack.packb([kind, pid, source, seq, payload], use_bin_type=True)


def unpack(data: bytes) -> Frame:
    """A frame, or ValueError if the bytes are not one."""
    try:
        fields = msgpack.unpackb(data, raw=False)
    except Exception as e:              # msgpack raises several types on garbage
        raise ValueError(f"not a msgpack frame: {e}") from None
    if (not isinstance(fields, list) or len(fields) != 5 or fields[0] not in NAMES
            or not all(isinstance(x, int) for x in fields[1:4])):
        raise ValueError("frame is not [kind, pid, source, seq, payload]")
    if fields[0] == MSG and not isinstance(fields[4], bytes):
        raise ValueError("MSG frame without a bytes payload")
    if fields[0] != MSG and not isinstance(fields[4], dict):
        raise ValueError(f"{NAMES[fields[0]]} frame without a map payload")
    return Frame(*fields)
