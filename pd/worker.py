"""A region worker: one region of one process, in a child process of pd, so
that whatever the application does (crash, endless loop, bad input) the
daemon carries on.  It reads the application from Redis, runs it with psim,
streams logs when the process is verbose, and records the result.

    PSTACK_REDIS=url python -m pd.worker PID REGION ENGINE
    PSTACK_REDIS=url python -m pd.worker          (a spare: the job comes on stdin)
"""
from __future__ import annotations

import ctypes
from array import array
import json
import os
import signal
import sys
import time

from broker.control import Control, connect
from broker.dataplane import DataPlane
from psim.engine import Options
from psim.errors import BadInput
from psim.run import Loaded, drive, result

from .region import RegionRun

LOG_BATCH = 500
PROGRESS_SECONDS = 0.5


class Progress:
    """Deliveries so far, to the process record, at most every half second."""

    def __init__(self, ctl: Control, pid: int, region: int):
        self.ctl, self.pid, self.region = ctl, pid, region
        self.last = 0.0

    def __call__(self, engine) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_SECONDS:
            self.last = now
            self.ctl.progress(self.pid, self.region, engine.outcome().delivered)


class LogStream:
    """handler_log lines to the process's Redis stream, in batches."""

    def __init__(self, ctl: Control, pid: int, engine: str, region: int):
        self.ctl, self.pid, self.engine, self.region = ctl, pid, engine, region
        self.buf: list[dict] = []

    def __call__(self, device: str, level: int, text: str) -> None:
        self.buf.append({"engine": self.engine, "region": self.region, "device": device,
                         "level": level, "text": text})
        if len(self.buf) >= LOG_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            self.ctl.log(self.pid, self.buf)
            self.buf = []


def run_region(ctl: Control, pid: int, region: int, engine_name: str) -> None:
    rec = ctl.process(pid)
    if rec is None or rec["state"] != "running":
        return                                   # killed or gone before we started
    nregions = int(rec["nregions"])
    opts = Options.from_dict({**json.loads(rec.get("options", "{}")),
                              **({"region": region} if nregions > 1 else {})})
    try:
        loaded = Loaded(ctl.app(pid).decode())
        engine = loaded.engine(opts, json.loads(rec.get("rmap", "{}")), _partition(ctl, pid), nregions)
    except BadInput as e:
        ctl.finish_region(pid, region, engine_name, "failed", str(e))
        return
    inst = loaded.instance
    if region == 0:
        ctl.update(pid, graph_type=inst.graph.id, devices=inst.n_devices, edges=inst.n_edges)
    logs = LogStream(ctl, pid, engine_name, region) if rec.get("verbose") == "1" else None
    collected: list = []
    on_log = logs or (lambda d, lv, t: collected.append((d, lv, t)))
    progress = Progress(ctl, pid, region)
    if nregions > 1:
        plane = DataPlane(ctl.r, pid, region, nregions)
        try:
            out = RegionRun(engine, plane, on_log, opts.timeout, progress).run()
        finally:
            plane.close()
    else:
        out = drive(engine, on_log, opts, progress)
    if logs:
        logs.flush()
    res = result(loaded, engine, out, collected)
    state = "failed" if out.status == "failed" else "finished"
    ctl.finish_region(pid, region, engine_name, state, out.error or "", res)


def _partition(ctl: Control, pid: int) -> array | None:
    data = ctl.partition(pid)
    return array("H", data) if data is not None else None


def die_with_parent() -> None:
    """A worker must not outlive its daemon (Linux: PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)          # PR_SET_PDEATHSIG
    if os.getppid() == 1:                  # the daemon died before we got here
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    """Run the region named on the command line, or (a spare) the one named
    on the first line of stdin; end quietly if stdin closes first."""
    die_with_parent()
    args = (argv or sys.argv[1:])[:3]
    if not args:
        args = sys.stdin.readline().split()
        if len(args) != 3:
            return 0
    pid, region, engine_name = args
    ctl = Control(connect())
    ctl.update(int(pid), **{f"worker:{region}": os.getpid()})
    run_region(ctl, int(pid), int(region), engine_name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
