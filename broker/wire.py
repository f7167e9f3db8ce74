"""The data-plane wire format: every frame between regions is one msgpack
array  [kind, pid, token, source region, sequence, payload], where token is
the process's incarnation (made at submission): a frame of another process
or incarnation is not for this receiver.

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
HELLO = 9      # region -> every region, first frame: {}: "I can reach you" (the handshake)
FINISH = 10    # coordinator -> the supervisor's region: {}: the run ended idle, make the supervisor's end-of-run calls
FINISHED = 11  # the supervisor's region -> coordinator: {}: they asked for no exit (else EXIT, or the region fails)
DEBUG = 12     # debugger -> region: {"op", "id", ...}: a request (docs/debugging.md)
DEBUGGED = 13  # region -> debugger: {"id", "ok", "value" | "error"}: a reply; or {"tell": "stopped" | "idle", ...}

NAMES = {MSG: "MSG", STATUS: "STATUS", PROBE: "PROBE", HWIDLE: "HWIDLE", HWDONE: "HWDONE",
         RESUME: "RESUME", STOP: "STOP", EXIT: "EXIT", HELLO: "HELLO", FINISH: "FINISH", FINISHED: "FINISHED",
         DEBUG: "DEBUG", DEBUGGED: "DEBUGGED"}


class Frame(NamedTuple):
    kind: int
    pid: int
    token: str
    source: int
    seq: int
    payload: Any


def pack(kind: int, pid: int, token: str, source: int, seq: int, payload: Any) -> bytes:
    return msgpack.packb([kind, pid, token, source, seq, payload], use_bin_type=True)


def unpack(data: bytes) -> Frame:
    """A frame, or ValueError if the bytes are not one."""
    try:
        fields = msgpack.unpackb(data, raw=False)
    except Exception as e:              # msgpack raises several types on garbage
        raise ValueError(f"not a msgpack frame: {e}") from None
    if (not isinstance(fields, list) or len(fields) != 6 or fields[0] not in NAMES
            or not isinstance(fields[2], str) or not all(isinstance(x, int) for x in (fields[1], *fields[3:5]))):
        raise ValueError("frame is not [kind, pid, token, source, seq, payload]")
    if fields[0] == MSG and not isinstance(fields[5], bytes):
        raise ValueError("MSG frame without a bytes payload")
    if fields[0] != MSG and not isinstance(fields[5], dict):
        raise ValueError(f"{NAMES[fields[0]]} frame without a map payload")
    return Frame(*fields)
