"""The debugger's side (docs/debugging.md): a Session drives every region of
one process through DEBUG frames on its data plane, as one more place on
the plane (not a region of devices: termination does not wait for it).

    s = pcli.debug(pid)              # a process run with paused=True
    s = local("app.xml")             # psim: the same, in this process
    s.break_on(device="n2", pin="toggle_in", when="counter == 5")
    s.cont()  ->  Stop(reason="break", region=1, event={...})
    s.state("n2"), s.inject("n3", "toggle_in"), s.step(3), s.cont()

Every region pauses together: when one stops (a breakpoint, the end of a
step), the session pauses all the others before it returns, so what it
shows is one consistent cut of the process.  Steps run in one region (the
one that stopped last, or the one named): n events there, exactly.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from broker import wire
from broker.dataplane import DataPlane, DataPlaneError, advertised_host
from broker.localplane import local_planes
from pd.region import RegionRun
from psim.debug import Breakpoint, DebugError
from psim.engine import Options
from psim.run import Loaded, result as psim_result

WAIT_MS = 100
REPLY_SECONDS = 30.0         # a region that does not answer a request in this long is stuck


@dataclass
class Stop:
    """Where the process stopped: reason "start", "break", "step", "pause",
    "idle" (a step ran out of events) or "end"; the region and event there
    (the handler about to run: device, type, pin, message); for "end", the
    process's status."""
    reason: str
    region: int | None = None
    event: dict = field(default_factory=dict)
    events: int = 0                      # events the region had run
    breakpoint: int | None = None        # index in Session.breakpoints
    status: str | None = None            # "end": exit, idle or failed

    def __str__(self) -> str:
        if self.reason == "end":
            return f"the process ended ({self.status})"
        ev = self.event
        at = f"{ev['handler']} {ev['device']}" + (f":{ev['pin']}" if ev.get("pin") else "") if ev else "between events"
        msg = f" message {ev['message']}" if ev.get("message") else ""
        bp = f" at breakpoint {self.breakpoint}" if self.breakpoint is not None else ""
        return f"{self.reason}{bp}: region {self.region}, {at}{msg} (after {self.events} events)"


class Session:
    """A debugger attached to a process over `plane`, at place `plane.region`
    (the last), serving `n` regions of devices.  `result()` gives the
    process's result once it has ended."""

    def __init__(self, plane, n: int, result: Callable[[], dict], on_end: Callable[[], None] = lambda: None,
                 leave: Callable[[], None] = lambda: None, gone: Callable[[], str | None] = lambda: None):
        """on_end: called once when the process has ended; leave: by close()
        before the end; gone(): the status of a process that ended without
        a STOP reaching the debugger (a region failed: failures are not
        negotiated), else None."""
        self.plane, self.n = plane, n
        self._result, self._on_end, self._leave, self._gone = result, on_end, leave, gone
        self.breakpoints: list[Breakpoint | None] = []     # by number; None: cleared
        self.stops: dict[int, Stop] = {}
        self.current = 0
        self.end: Stop | None = None
        self._ids = 0
        self._replies: dict[int, dict] = {}
        self._idle: set[int] = set()
        self._where_of: dict[str, int] = {}
        self._resumed: dict[int, int] = {}            # region -> id of the cont or step it was last sent
        self._wait(lambda: len(self.stops) == n)       # every region reports paused at its start

    # ---- running ---------------------------------------------------------------------

    def cont(self, timeout: float | None = None) -> Stop:
        """Run every region to the next breakpoint (anywhere) or the end;
        after `timeout` seconds, pause instead."""
        if self.end:
            return self.end
        self._all("cont")
        deadline = time.monotonic() + timeout if timeout is not None else None
        self._wait(lambda: self.stops or (deadline is not None and time.monotonic() >= deadline))
        return self._settle(self._first_stop() if self.stops else None)

    def step(self, n: int = 1, region: int | None = None) -> Stop:
        """Run `n` events in one region (the last to stop, or `region`), the others paused."""
        if n < 1:
            raise DebugError("step takes a number of events of at least 1")
        if self.end:
            return self.end
        r = self.current if region is None else self._region_index(region)
        self._idle.discard(r)
        self._request(r, "step", n=n)
        # split, a region out of work waits on the paused others: stepping is over
        self._wait(lambda: r in self.stops or (self.n > 1 and r in self._idle))
        if r not in self.stops and not self.end:
            self._request(r, "pause")
            self._wait(lambda: r in self.stops)
            if r in self.stops:
                self.stops[r].reason = "idle"
        if self.end:
            return self.end
        self.current = r
        return self._settled(self.stops[r])

    def pause(self) -> Stop:
        """Pause every region (they are paused whenever a call here returns:
        this says where they are)."""
        return self._settle(None)

    def _settle(self, first: Stop | None) -> Stop:
        """One region stopped (or none, when pausing): pause the others."""
        if self.end:
            return self.end
        for r in range(self.n):
            if r not in self.stops:
                self._request(r, "pause")
        self._wait(lambda: len(self.stops) == self.n)
        stop = first or replace(self.stops[self.current], reason="pause")
        self.current = stop.region
        return self._settled(stop)

    def _settled(self, stop: Stop) -> Stop:
        return self.end or stop

    def _first_stop(self) -> Stop:
        return min(self.stops.values(), key=lambda s: (s.reason == "pause", s.region))

    # ---- breakpoints -----------------------------------------------------------------

    def break_on(self, device: str | None = None, pin: str | None = None, handler: str | None = None,
                 when: str | None = None, type: str | None = None) -> int:
        """Stop before a handler runs: on `device` (or any device of `type`),
        `pin`, `handler` ("init", "send", "receive", "device_idle",
        "hardware_idle"), when `when` holds (a Python expression over the
        device's state and properties fields, `msg.FIELD`, `device`, `pin`).
        Returns the breakpoint's number."""
        bp = Breakpoint(device=device, pin=pin, handler=handler, when=when, type=type)
        if device is not None and pin is not None and pin not in self.names(device=device):
            raise DebugError(f"device '{device}' has no pin '{pin}'")
        if device is not None:
            self._region_of(device)                 # fails for a device the process has not
        self.breakpoints.append(bp)
        self._send_breaks()
        return len(self.breakpoints) - 1

    def clear(self, number: int | None = None) -> None:
        """Remove breakpoint `number`, or all of them."""
        if number is None:
            self.breakpoints = []
        elif 0 <= number < len(self.breakpoints):
            self.breakpoints[number] = None       # numbers stay what they were
        else:
            raise DebugError(f"no breakpoint {number}")
        self._send_breaks()

    def _send_breaks(self) -> None:
        points = [{"number": i, **bp.to_dict()} for i, bp in enumerate(self.breakpoints) if bp]
        self._all("break", points=points)

    # ---- looking and changing ----------------------------------------------------------

    def where(self) -> Stop:
        return self.end or self.stops[self.current]

    def state(self, device: str) -> dict:
        return self._on_device(device, "state")

    def props(self, device: str) -> dict:
        return self._on_device(device, "props")

    def pending(self, device: str) -> list[dict]:
        """Messages waiting for the device (in random order: those in flight;
        injected ones not delivered yet)."""
        return self._on_device(device, "pending")

    def inject(self, device: str, pin: str, **fields: Any) -> None:
        """Deliver a message to the device's input pin, as if sent, before its region's next event."""
        self._on_device(device, "inject", pin=pin, fields=fields)

    def set_state(self, device: str, **fields: Any) -> dict:
        return self._on_device(device, "set_state", fields=fields)

    def names(self, prefix: str = "", device: str | None = None) -> list[str]:
        """Device ids starting with `prefix`, or pins of `device` (completion)."""
        if device is not None:
            return self._on_device(device, "names", prefix=prefix)
        out: list[str] = []
        for r in range(self.n):
            out += self._request(r, "names", prefix=prefix)
        return sorted(out)[:200]

    def _on_device(self, device: str, op: str, **args) -> Any:
        self._live()
        return self._request(self._region_of(device), op, device=device, **args)

    def _region_of(self, device: str) -> int:
        if device not in self._where_of:
            for r in range(self.n):
                if self._request(r, "has", device=device):
                    self._where_of[device] = r
                    break
            else:
                raise DebugError(f"the process has no device '{device}'")
        return self._where_of[device]

    def _region_index(self, region: int) -> int:
        if not 0 <= region < self.n:
            raise DebugError(f"no region {region}: the process has regions 0 to {self.n - 1}")
        return region

    # ---- the end -----------------------------------------------------------------------

    def finish(self) -> dict:
        """Clear the breakpoints, run to the end; the process's result."""
        if not self.end:
            self.clear()
            while not self.end:
                self.cont()
        return self.result()

    def result(self) -> dict:
        if not self.end:
            raise DebugError("the process has not ended: cont() or finish() first")
        return self._result()

    def close(self) -> None:
        """Leave: a process not ended yet fails ("the debugger left")."""
        if not self.end:
            self._leave()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- frames ------------------------------------------------------------------------

    def _live(self) -> None:
        if self.end:
            raise DebugError("the process has ended")

    def _all(self, op: str, **args) -> None:
        ids = [self._send(r, op, args) for r in range(self.n)]
        self._wait(lambda: self.end or all(i in self._replies for i in ids))
        for i in ids:
            self._check(self._replies.pop(i, {"ok": True}))

    def _request(self, region: int, op: str, **args) -> Any:
        rid = self._send(region, op, args)
        self._wait(lambda: self.end or rid in self._replies, REPLY_SECONDS,
                   f"region {region} did not answer '{op}' in {REPLY_SECONDS:.0f} s")
        if self.end and rid not in self._replies:
            raise DebugError("the process has ended")
        return self._check(self._replies.pop(rid))

    @staticmethod
    def _check(reply: dict) -> Any:
        if not reply.get("ok"):
            raise DebugError(reply.get("error", "refused"))
        return reply.get("value")

    def _send(self, region: int, op: str, args: dict) -> int:
        self._ids += 1
        if op in ("cont", "step"):                # a stop from before this is history
            self._resumed[region] = self._ids
            self.stops.pop(region, None)
        self.plane.send(region, wire.DEBUG, {"op": op, "id": self._ids, **args})
        return self._ids

    def _wait(self, done: Callable[[], Any], seconds: float | None = None, why: str = "") -> None:
        deadline = time.monotonic() + seconds if seconds else None
        while not done() and not self.end:
            frames = self.plane.receive(WAIT_MS, 64)
            for f in frames:
                self._frame(f)
            if not frames and (status := self._gone()):
                self._ended(status)
            if deadline and time.monotonic() > deadline:
                raise DebugError(why)

    def _ended(self, status: str) -> None:
        if not self.end:
            self.end = Stop("end", status=status)
            self._on_end()

    def _frame(self, f: wire.Frame) -> None:
        if f.kind == wire.STOP:
            self._ended(f.payload.get("status"))
        elif f.kind == wire.DEBUGGED:
            p = f.payload
            if p.get("tell") == "stopped" and p.get("since", 0) >= self._resumed.get(f.source, 0):
                self.stops[f.source] = Stop(p["reason"], f.source, p.get("event") or {}, p.get("events", 0),
                                            p.get("breakpoint"))
            elif p.get("tell") == "idle":
                self._idle.add(f.source)
            elif "id" in p:
                self._replies[p["id"]] = p


# ---- psim: a local session ------------------------------------------------------------------

def local(xml: str | Path | None = None, options: dict | Options | None = None,
          on_log: Callable[[str, int, str], None] | None = None, loaded: Loaded | None = None) -> Session:
    """Debug a psim run of `xml` (or of an application already `loaded`) in
    this process: its C engine runs in a thread over an in-process plane,
    paused before its first event."""
    opts = options if isinstance(options, Options) else Options.from_dict(options)
    loaded = loaded or Loaded(xml, watchers=True)
    engine = loaded.engine(opts)
    region, me = local_planes(2)
    log: list = []
    out: dict = {}
    run = RegionRun(engine, region, on_log or (lambda d, lv, t: log.append((d, lv, t))), debugger=1)

    def serve() -> None:
        try:
            out["result"] = psim_result(loaded, engine, run.run(), log)
        except BaseException as e:                # said by result(), not lost in a thread
            out["error"] = e

    thread = threading.Thread(target=serve, name="psim-debug", daemon=True)
    thread.start()

    def result() -> dict:
        thread.join()
        if "error" in out:
            raise out["error"]
        return out["result"]

    def gone() -> str | None:
        return None if thread.is_alive() else "failed"

    def leave() -> None:                          # the run stops where it is
        me.send(0, wire.STOP, {"status": "exit", "code": 1})
        thread.join()

    return Session(me, 1, result, leave=leave, gone=gone)


# ---- the cluster: attaching to a paused process ---------------------------------------------

def attach(pid: int) -> Session:
    """Debug process `pid`, started with run(..., paused=True): join its data
    plane at the debugger's place, as its owner.  The place beats from now
    on (pcli/keepalive.py), through the other regions' start; if the
    process ends before they all meet, DebugError with its reason at once."""
    from . import api
    from .engine import AppRendezvous, ended_elsewhere, ended_reason, keepalive
    ctl, user = api.control(), api.user()
    rec = ctl.process(int(pid))
    if rec is None:
        raise DebugError(f"no process {pid}")
    if not rec.get("debugger"):
        raise DebugError(f"process {pid} was not started paused (run(..., paused=True)): it cannot be debugged")
    while (state := api.info(pid)["state"]) == "waiting":
        time.sleep(0.05)
    if state != "running":
        raise DebugError(ended_reason(pid) or f"process {pid} is {state}")
    with api.owners_only(rec, "data plane"):
        token = ctl.token(int(pid))
    region = int(rec["debugger"])
    alive = keepalive(user, pid, region)
    try:
        plane = DataPlane(AppRendezvous(ctl, user, pid, alive), pid, token, region, region + 1, advertised_host(ctl.r))
    except BaseException as e:              # Ctrl-C too: the place stops beating
        why = ended_elsewhere(alive, pid)
        alive.close()
        if isinstance(e, (DataPlaneError, ValueError)):
            raise DebugError(why or f"cannot join process {pid}: {e}") from None
        raise

    def done(state: str, reason: str = "") -> None:
        plane.close()
        # a result of its own: the process ends when every place has one (refused quietly if it ended)
        ctl.app_finish(user, pid, region, state, reason, {"debugger": True})
        alive.close()

    return Session(plane, region, lambda: api.Future(pid, token=token).result(), on_end=lambda: done("finished"),
                   leave=lambda: done("failed", "the debugger left before the process ended"),
                   gone=lambda: "failed" if ended_elsewhere(alive, pid) else None)
