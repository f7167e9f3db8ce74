"""The event loop of one region of a process split across engines.

    loop:
        frames in: records -> engine.inject (C), control -> react
        engine.run(budget)                 (C; paused between HWIDLE and RESUME)
        outboxes -> one MSG frame per destination region
        idle: answer the pending PROBE, wait on the socket

Region 0 also hosts the coordinator (pd/termination.py).  A failure here
(assert, crash, timeout) is not negotiated: the worker records the process
failed, and the daemons stop every other region within their next loop.
`watch()`, asked every round, may end the region with a reason (e.g.
another region ended without this one being stopped: a forged or lost
STOP must fail the process, not hang it).

With a debugger attached (the last place on the plane, not a region of
devices: termination does not wait for it), the region starts paused and
serves its DEBUG requests (docs/debugging.md).  Paused, it runs no event
and answers no PROBE, but keeps taking frames: records from other regions
wait in its inbox, so every region's pause point together is a consistent
cut.  It pauses inside an event when the C engine stops there
(psim/debug.py), or between batches (small ones while debugged) when the
debugger asks.
"""
from __future__ import annotations

import time
from typing import Callable

from broker import wire
from broker.dataplane import DataPlane
from psim.debug import Agent, DebugError
from psim.engine import IDLE, STOP_EXIT, STOP_FAIL, STOPPED, Engine
from psim.run import BATCH, LogSink, Outcome, drain_logs, failed, idle_rounds
from .termination import ALL, Coordinator

WAIT_MS = 50
DEBUG_BATCH = 1 << 16      # events per call into C while debugged: a pause request waits at most this


class RegionRun:
    def __init__(self, engine: Engine, plane: DataPlane, on_log: LogSink, timeout: float = 0.0,
                 on_batch: Callable[[Engine], None] | None = None,
                 watch: Callable[[], str | None] = lambda: None, debugger: int | None = None):
        self.engine, self.plane, self.on_log, self.on_batch = engine, plane, on_log, on_batch
        self.watch = watch
        self.debugger = debugger
        self.region, self.n = plane.region, plane.nregions - (debugger is not None)
        graph = engine.inst.graph
        sup_region = engine.sup_region if graph.supervisor is not None else None
        self.coordinator = Coordinator(self.n, idle_rounds(graph), sup_region) if self.region == 0 else None
        self.deadline = time.monotonic() + timeout if timeout and debugger is None else None
        self.agent = Agent(engine, self._pause) if debugger is not None and isinstance(engine, Engine) else None
        self.batch = DEBUG_BATCH if debugger is not None else BATCH
        self.pausing = False          # serving the debugger, no event runs
        self.told_idle = False        # the debugger knows this region ran out of work while stepping
        self.resumed_by = 0           # the debugger's last cont or step: its stops say which they end
        self.paused = False           # between HWIDLE and RESUME
        # the engine went idle and nothing came since that could give it work:
        # not run again (a whole run's supervisor ticks once per call; split, a call would be a no-op)
        self.quiet = False
        self.probe: int | None = None # wave of a PROBE not answered yet
        self.exit_sent = False
        self.stop: dict | None = None
        self.bad_frame: str | None = None
        self.rounds = 0

    def run(self) -> Outcome:
        t0 = time.perf_counter()
        if self.debugger is not None:
            self._pause({"reason": "start", "events": 0})     # before the first event
        self.engine.start(self._remaining())
        self._report_exit()
        if self.coordinator:
            self._send(self.coordinator.start())
        try:
            self._loop()
        except ValueError as e:                  # a malformed frame or record batch, or watch()
            self.bad_frame = f"data plane: {e}"
        self._drain_logs()
        return self._outcome(time.perf_counter() - t0)

    def _loop(self) -> None:
        while self.stop is None:
            frames = self.plane.receive(0)
            self._handle(frames)
            if self.stop is not None or self._failed():
                return
            idle = self._step() if not self.paused and (not self.quiet or self._past_deadline()) else True
            if self._failed():
                return
            if idle and self.agent and self.agent.stepping and not self.told_idle:
                self.told_idle = True
                self._tell({"tell": "idle", "events": self.agent.events()})
            if idle and not frames:
                self._answer_probe()
                self._handle(self.plane.receive(WAIT_MS))
            self._drain_logs()
            self._check_watch()

    # ---- one round of work ---------------------------------------------------------

    def _step(self) -> bool:
        """Run the engine once; True when it is idle with nothing left to send."""
        status = self.engine.run(self.batch, self._remaining())
        self.quiet = status == IDLE
        if self.agent and self.agent.error:
            raise ValueError(f"debugger: {self.agent.error}")
        self._flush()
        if self.on_batch:
            self.on_batch(self.engine)
        if status == STOPPED:
            self._report_exit()
            return True
        if self._past_deadline():
            self.engine.run(1, 1e-6)                      # the engine records the timeout
        return status == IDLE

    def _report_exit(self) -> None:
        """handler_exit here: tell the coordinator, once."""
        o = self.engine.outcome()
        if o.stop == STOP_EXIT and not self.exit_sent:
            self.exit_sent = True
            self._flush()
            self.plane.send(0, wire.EXIT, {"code": o.exit_code})

    def _flush(self) -> None:
        for q in range(self.n):
            if q != self.region:
                records = self.engine.outbox(q)
                if records is not None:
                    self.plane.send(q, wire.MSG, records)      # msgpack copies it once
                    self.engine.clear_outbox(q)

    def _answer_probe(self) -> None:
        if self.probe is None or self.paused:
            return
        o = self.engine.outcome()
        self.plane.send(0, wire.STATUS, {"wave": self.probe, "sent": o.remote_sent,
                                         "received": o.remote_received, "sends": o.sends})
        self.probe = None

    def _check_watch(self) -> None:
        problem = self.watch()
        if problem:
            while self.stop is None:               # a STOP may wait behind frames we have not read
                frames = self.plane.receive(0, 1000)
                if not frames:
                    raise ValueError(problem)
                self._handle(frames)

    # ---- frames ---------------------------------------------------------------------

    def _handle(self, frames: list[wire.Frame]) -> None:
        for f in frames:
            if f.kind in (wire.MSG, wire.RESUME, wire.DEBUG):
                self.quiet = False            # work may have come
            if f.kind == wire.MSG:
                try:
                    self.engine.inject(f.payload)
                except ValueError as e:
                    raise ValueError(f"bad records from region {f.source}: {e}") from None
            elif f.kind == wire.PROBE:
                self.probe = f.payload["wave"]
            elif f.kind == wire.HWIDLE:
                self.paused = True
                self.engine.hardware_idle(self._remaining())
                self.rounds += 1
                self._report_exit()
                self.plane.send(0, wire.HWDONE, {"round": f.payload["round"]})
            elif f.kind == wire.RESUME:
                self.paused = False
            elif f.kind == wire.FINISH:
                self._finish()
            elif f.kind == wire.STOP:
                self.stop = f.payload
            elif f.kind == wire.DEBUG and f.source == self.debugger:
                self._debug(f.payload)
            if self.coordinator and f.kind in (wire.STATUS, wire.HWDONE, wire.EXIT, wire.FINISHED):
                self._send(self.coordinator.on_frame(f))

    # ---- the debugger (docs/debugging.md) ---------------------------------------------

    def _pause(self, where: dict) -> None:
        """Stopped (inside an event, or between them): serve the debugger
        until it lets this region go on, or the process ends.  What it sent
        goes out first: paused, it is in the other regions' inboxes."""
        self._flush()
        self.where = {**where, "region": self.region, "since": self.resumed_by}
        self._tell({"tell": "stopped", **self.where})
        self.pausing = True
        while self.pausing and self.stop is None:
            self._handle(self.plane.receive(WAIT_MS))
            self._drain_logs()
            if self.watch():
                return                 # the process cannot end well: let the loop find out

    def _debug(self, p: dict) -> None:
        op, rid = p.get("op"), p.get("id")
        if op in ("cont", "step"):
            if self.agent:
                self.agent.resume(int(p["n"]) if op == "step" else None)
            self.pausing, self.told_idle, self.resumed_by = False, False, rid
            self._reply(rid, True, None)
        elif op == "pause":
            self._reply(rid, True, None)
            if self.pausing:
                self._tell({"tell": "stopped", **self.where})
            else:
                self._pause({"reason": "pause", "events": self.agent.events() if self.agent else 0})
        elif self.agent is None:                  # a Python region: no breakpoints, no device the debugger can see
            if op in ("break", "has", "names"):
                self._reply(rid, True, {"break": None, "has": False, "names": []}[op])
            else:
                self._reply(rid, False, f"region {self.region} is not a C engine: it cannot '{op}'")
        else:
            try:
                self._reply(rid, True, self.agent.handle(op, p))
            except DebugError as e:
                self._reply(rid, False, str(e))
            except Exception as e:                # a request the agent could not read: refused, the run goes on
                self._reply(rid, False, f"bad '{op}' request: {type(e).__name__}: {e}")

    def _reply(self, rid, ok: bool, value) -> None:
        self._tell({"id": rid, "ok": ok, ("value" if ok else "error"): value})

    def _tell(self, payload: dict) -> None:
        self.plane.send(self.debugger, wire.DEBUGGED, payload)

    def _finish(self) -> None:
        """The run ended idle: the supervisor's end-of-run calls (which may
        ask for an exit, or fail the region)."""
        self.engine.finish(self._remaining())
        self._report_exit()
        if not self.exit_sent and not self._failed():
            self.plane.send(0, wire.FINISHED, {})

    def _send(self, out) -> None:
        for to, kind, payload in out:
            if to == ALL:
                self.plane.broadcast(kind, payload)
            else:
                self.plane.send(to, kind, payload)

    # ---- the end ----------------------------------------------------------------------

    def _failed(self) -> bool:
        return self.engine.outcome().stop == STOP_FAIL

    def _past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _remaining(self) -> float:
        return max(self.deadline - time.monotonic(), 1e-6) if self.deadline else 0.0

    def _drain_logs(self) -> None:
        drain_logs(self.engine, self.on_log)

    def _outcome(self, seconds: float) -> Outcome:
        if self.bad_frame:
            return Outcome("failed", 1, self.bad_frame, self.rounds, seconds)
        return failed(self.engine, self.rounds, seconds) or Outcome(
            self.stop["status"], int(self.stop["code"]), None, self.rounds, seconds)
