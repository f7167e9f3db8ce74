"""Global termination and hardware idle for a process split into regions.

Region 0's worker hosts the coordinator.  It probes in waves: each region
answers a PROBE with STATUS (its counters of remote records sent and
received, and of sends) the next time it is idle.  When a wave finds every
region idle with sent == received, and the next wave finds the same
counters, nothing was in flight between them: the process is quiescent
(the double-counting test, checked twice).  Then either OnHardwareIdle runs
everywhere (HWIDLE, all HWDONE, RESUME: a barrier, so no message sent after
a region's OnHardwareIdle reaches a region that has not had it) and probing
starts again, or the process ends: at once without OnHardwareIdle, or after
ten hardware-idle rounds in a row without a send (as psim standalone).
A process with a supervisor ends idle only after the supervisor's region
has made its end-of-run calls (FINISH, answered by FINISHED, or by EXIT if
they asked for an exit).  handler_exit anywhere (EXIT) ends every region
with its code.

Pure logic: handlers return the frames to send as (region or ALL, kind,
payload); pd/region.py moves them.
"""
from __future__ import annotations

from broker import wire
from psim.run import IdleRounds

ALL = -1
Out = list[tuple[int, int, dict]]


class Coordinator:
    def __init__(self, nregions: int, idle_rounds: bool, sup_region: int | None = None):
        self.n = nregions
        self.has_hwidle = idle_rounds
        self.sup_region = sup_region
        self.wave = 0
        self.replies: dict[int, tuple[int, int, int]] = {}
        self.previous: tuple[int, int] | None = None     # (sent, received) of the last balanced wave
        self.idle = IdleRounds()               # the same rule as psim standalone
        self.hwdone: set[int] = set()
        self.ended = False

    def start(self) -> Out:
        return self._probe()

    def _probe(self) -> Out:
        self.wave += 1
        self.replies = {}
        return [(ALL, wire.PROBE, {"wave": self.wave})]

    def _stop(self, status: str, code: int) -> Out:
        self.ended = True
        return [(ALL, wire.STOP, {"status": status, "code": code})]

    def on_frame(self, frame: wire.Frame) -> Out:
        if self.ended:
            return []
        p = frame.payload
        if frame.kind == wire.EXIT:
            return self._stop("exit", int(p["code"]))
        if frame.kind == wire.FINISHED:
            return self._stop("idle", 0)
        if frame.kind == wire.STATUS and p["wave"] == self.wave:
            self.replies[frame.source] = (p["sent"], p["received"], p["sends"])
            return self._wave_done() if len(self.replies) == self.n else []
        if frame.kind == wire.HWDONE and p["round"] == self.idle.rounds:
            self.hwdone.add(frame.source)
            if len(self.hwdone) == self.n:
                self.previous = None
                return [(ALL, wire.RESUME, {})] + self._probe()
        return []

    def _wave_done(self) -> Out:
        sent = sum(r[0] for r in self.replies.values())
        received = sum(r[1] for r in self.replies.values())
        if sent != received or self.previous != (sent, received):
            self.previous = (sent, received) if sent == received else None
            return self._probe()
        return self._quiescent(sum(r[2] for r in self.replies.values()))

    def _quiescent(self, sends: int) -> Out:
        if not self.has_hwidle or not self.idle.next_round(sends):
            if self.sup_region is not None:
                return [(self.sup_region, wire.FINISH, {})]
            return self._stop("idle", 0)
        self.hwdone = set()
        return [(ALL, wire.HWIDLE, {"round": self.idle.rounds})]
