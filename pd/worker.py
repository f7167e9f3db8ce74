"""A region worker: one region of one process, in a child process of pd, so
that whatever the application does (crash, endless loop, bad input) the
daemon carries on.  It reads the application from Redis, runs it with psim,
streams logs when the process is verbose, and records the result.

A thread heartbeats for the region (the C engine runs without the GIL) and
fences it: the worker ends itself when its process ended, when it belongs to
another incarnation of the process, when its daemon no longer holds the
engine (stopped, gone, replaced), or when Redis has been out of reach for
longer than the cluster waits for a heartbeat (its host is cut off: the
process has been failed elsewhere).  Every write it makes carries the
process's incarnation token.

    PSTACK_REDIS=url PSTACK_DAEMON_ID=id python -m pd.worker PID REGION TOKEN ENGINE
    PSTACK_REDIS=url PSTACK_DAEMON_ID=id python -m pd.worker     (a spare: the job comes on stdin)
"""
from __future__ import annotations

import ctypes
from array import array
from dataclasses import replace
import json
import logging
import os
import signal
import sys
import threading
import time

import redis

from broker.control import REGION_TTL_MS, Control, Job, connect
from broker.dataplane import DataPlane, DataPlaneError
from psim import limits as rlimits
from psim.limits import Limits
from psim.engine import FAIL_FILE_SIZE, FAIL_MEMORY, Options
from psim.errors import BadInput
from psim.run import Loaded, Outcome, drive, result

from .limits import Policy, Refused, where
from .region import RegionRun

LOG_BATCH = 500
BEAT_SECONDS = 0.5
GIVE_UP_SECONDS = 2 * REGION_TTL_MS / 1000    # fenced: no Redis, or no daemon, for this long
STOP_GRACE_SECONDS = 3.0                      # another region ended; our STOP should be here by then
PATIENCE_SECONDS = 30.0                       # a Redis restart: how long the worker's commands retry
log = logging.getLogger("pd.worker")


class Heartbeat(threading.Thread):
    """The region's heartbeat and fence.  `progress` holds the fields the
    main thread wants in the process record (deliveries, dropped frames)."""

    def __init__(self, url: str, job: Job, daemon: str):
        super().__init__(daemon=True, name="heartbeat")
        # a client of its own, quick to fail: a cut-off host must notice
        self.ctl = Control(connect(url, timeout=1.0))
        self.job, self.daemon = job, daemon
        # every key is here from the start: the main thread only changes values
        self.progress = {f"worker:{job.region}": os.getpid(), f"delivered:{job.region}": 0,
                         f"dropped:{job.region}": 0}
        self.peer_done_since: float | None = None
        self.finished = False                 # this region recorded its result

    def run(self) -> None:
        trouble_since: float | None = None    # no Redis, or no daemon, since
        while True:
            verdict = self._beat()
            now = time.monotonic()
            if verdict in ("ended", "stale"):
                os._exit(0)                   # nothing of ours is wanted any more
            if verdict == "ok":
                trouble_since = None
            else:
                trouble_since = trouble_since or now
                if now - trouble_since > GIVE_UP_SECONDS:
                    log.warning("process %d region %d: %s for %.0f s; stopping", self.job.pid,
                                self.job.region, verdict, now - trouble_since)
                    os._exit(1)
            time.sleep(BEAT_SECONDS)

    def _beat(self) -> str:
        try:
            verdict, done = self.ctl.region_beat(self.job, self.daemon, **self.progress)
        except redis.RedisError:
            return "no Redis"
        if done and not self.finished and self.peer_done_since is None:
            self.peer_done_since = time.monotonic()
        return verdict

    def problem(self) -> str | None:
        """Another region recorded its result, and this one was not told to
        stop within the grace period: the process cannot end well."""
        if self.peer_done_since and time.monotonic() - self.peer_done_since > STOP_GRACE_SECONDS:
            return "another region ended without this one being stopped (a forged or lost STOP frame)"
        return None


class LogStream:
    """handler_log lines to the process's Redis stream, in batches."""

    def __init__(self, ctl: Control, job: Job):
        self.ctl, self.job = ctl, job
        self.buf: list[tuple[str, int, str]] = []

    def __call__(self, device: str, level: int, text: str) -> None:
        self.buf.append((device, level, text))
        if len(self.buf) >= LOG_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            self.ctl.log(self.job, self.buf)
            self.buf = []


def run_region(ctl: Control, job: Job, beat: Heartbeat) -> None:
    rec = ctl.process(job.pid)
    if rec is None or rec["token"] != job.token or rec["state"] != "running":
        return                                   # killed, gone or stale before we started
    nregions = int(rec["nregions"])
    opts = limited_options(ctl, job, rec)
    if opts is None:
        return
    if nregions > 1:
        opts = replace(opts, region=job.region)
    try:
        loaded = Loaded(ctl.app(job.pid).decode())
        engine = loaded.engine(opts, json.loads(rec.get("rmap", "{}")), _partition(ctl, job.pid), nregions)
    except BadInput as e:
        ctl.finish_region(job, "failed", str(e))
        return
    inst = loaded.instance
    if job.region == 0:
        ctl.proc_set(job, graph_type=inst.graph.id, devices=inst.n_devices, edges=inst.n_edges)
    logs = LogStream(ctl, job) if rec.get("verbose") == "1" else None
    collected: list = []
    on_log = logs or (lambda d, lv, t: collected.append((d, lv, t)))
    delivered, dropped = f"delivered:{job.region}", f"dropped:{job.region}"
    plane: DataPlane | None = None

    def progress(engine) -> None:
        beat.progress[delivered] = engine.outcome().delivered
        beat.progress[dropped] = plane.dropped if plane else 0

    if nregions > 1:
        try:
            plane = DataPlane(ctl.r, job.pid, job.token, job.region, nregions)
        except (DataPlaneError, ValueError) as e:
            ctl.finish_region(job, "failed", f"data plane: {e}")
            return
        try:
            out = RegionRun(engine, plane, on_log, opts.timeout, progress, beat.problem).run()
        finally:
            plane.close()
    else:
        out = drive(engine, on_log, opts, progress)
    if logs:
        logs.flush()
    res = result(loaded, engine, out, collected)
    if plane:
        res["metrics"]["Dropped frames"] = plane.dropped
    beat.finished = True
    ctl.finish_region(job, "failed" if out.status == "failed" else "finished", failure_reason(job, out), res)


# ---- resource limits (pd/limits.py, psim/limits.py) ----------------------------------

def limited_options(ctl: Control, job: Job, rec: dict) -> Options | None:
    """The process's psim options, with the region's limits applied to this
    worker before it loads (and compiles) anything; None when the daemon
    refuses the process's limits (the region is failed with the reason)."""
    try:
        opts, limits = region_limits(job, rec)
    except Refused as e:
        ctl.finish_region(job, "failed", f"{where(job.region, job.engine)}: {e}")
        return None
    rlimits.apply(limits)
    return replace(opts, memory_mb=limits.memory_mb)     # the engine's failures name the limit


def region_limits(job: Job, rec: dict) -> tuple[Options, Limits]:
    """The process's psim options, and the limits this daemon gives its region."""
    opts = Options.from_dict(json.loads(rec.get("options", "{}")))
    return opts, Policy.from_env().limits(opts.memory_mb, job.engine)


def failure_reason(job: Job, out: Outcome) -> str:
    """The engine's reason; a limit it caught names the region and engine too."""
    if out.kind in (FAIL_MEMORY, FAIL_FILE_SIZE):
        return f"{where(job.region, job.engine)}: {out.error}"
    return out.error or ""


def report_memory_error(ctl: Control, job: Job) -> None:
    """Python itself was refused memory: loading the application, keeping
    its log lines or shaping its result (a handler's would be the engine's)."""
    limit = region_limits(job, ctl.process(job.pid) or {})[1].memory_mb
    what = f"memory limit of {limit} MB exceeded" if limit else "out of memory"
    ctl.finish_region(job, "failed", f"{where(job.region, job.engine)}: {what} "
                      "(in psim: loading the application, keeping its log or shaping its result)")


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
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s pd.worker %(message)s")
    line = " ".join((argv or sys.argv[1:])[:4]) or sys.stdin.readline()
    try:
        job = Job.parse(line)
    except ValueError:
        return 0
    url = os.environ["PSTACK_REDIS"]
    beat = Heartbeat(url, job, os.environ.get("PSTACK_DAEMON_ID", ""))
    beat.start()
    ctl = Control(connect(url, patience=PATIENCE_SECONDS))
    try:
        run_region(ctl, job, beat)
    except MemoryError:
        report_memory_error(ctl, job)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
