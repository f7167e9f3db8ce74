"""A region worker: one region of one process, in a child process of pd, so
that whatever the application does (crash, endless loop, bad input) the
daemon carries on.  It holds the Redis connection and does every Redis
interaction of the region; the application itself runs in its sandbox
(pd/jail.py starts it, pd/sandbox.py is its program), a process with no
credentials, as a user of its own when pd is root.  The worker reads the
application from Redis and sends it to the sandbox, answers the sandbox's
requests (compiled modules, the data plane's rendezvous), streams its logs
when the process is verbose, records its progress and its result, and
fails the region with the reason when the sandbox dies or hits its
process limit.

A thread heartbeats for the region (the C engine runs without the GIL) and
fences it: the worker ends itself when its process ended, when it belongs to
another incarnation of the process, when its daemon no longer holds the
engine (stopped, gone, replaced), or when Redis has been out of reach for
NO_REDIS_SECONDS (its host is cut off: the process has been failed
elsewhere).  A stalled Redis (BUSY answers, or no answer for a while) is
ridden out.  Every write it makes carries the
process's incarnation token.

    PSTACK_REDIS=url PSTACK_DAEMON_ID=id python -m pd.worker PID REGION TOKEN ENGINE
    PSTACK_REDIS=url PSTACK_DAEMON_ID=id python -m pd.worker     (a spare: the job comes on stdin)
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import asdict, replace

import redis

from broker.control import REGION_TTL_MS, TRACE_CUT, Control, Job, connect
from broker.dataplane import DataPlaneError, RedisRendezvous, advertised_host, curve_wanted
from broker.diskfull import DiskFull
from psim import build
from psim.engine import Options
from psim.errors import BadInput
from psim.limits import Limits
from psim.series import Series

from . import results
from .channel import Closed
from .form import place
from .jail import Jail, die_with_parent
from .limits import Policy, Refused, where
from .modules import ModuleCache
from .modules import Refused as ModuleRefused

TRACEBACK_CHARS = 4000                        # of a sandbox's traceback, in the daemon's log
CLOSE_GRACE_SECONDS = 2.0                     # a sandbox that closed its channel has this long to end
POLL_SECONDS = 0.25                           # how often the process count and problems are checked
BEAT_SECONDS = 0.5
GIVE_UP_SECONDS = 2 * REGION_TTL_MS / 1000    # fenced: no daemon for this long
TRACE_MB = int(os.environ.get("PSTACK_TRACE_MB", "256"))    # of event trace kept per region
STOP_GRACE_SECONDS = 3.0                      # another region ended; our STOP should be here by then
PATIENCE_SECONDS = 30.0                       # a Redis restart: how long the worker's commands retry
# Fenced: no Redis for this long.  Longer than GIVE_UP_SECONDS: a Redis
# stalled (stopped, a long command; BUSY is waited out in the command)
# reaps nobody meanwhile, nor just after (scripts.lua: stalled), so the
# region runs on; a host cut off has its process failed elsewhere within
# REGION_TTL_MS anyway, so waiting longer only keeps its CPU busy longer.
NO_REDIS_SECONDS = PATIENCE_SECONDS
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
                         f"dropped:{job.region}": 0, f"phase:{job.region}": "loading"}
        self.peer_done_since: float | None = None
        self.finished = False                 # this region recorded its result

    def run(self) -> None:
        trouble, since = "ok", 0.0            # no Redis, or no daemon, since
        while True:
            verdict = self._beat()
            now = time.monotonic()
            if verdict in ("ended", "stale"):
                os._exit(0)                   # nothing of ours is wanted any more
            if verdict != trouble:            # each trouble has its own time (after a stall, the daemon's beat is due)
                trouble, since = verdict, now
            if verdict != "ok":
                if now - since > (NO_REDIS_SECONDS if verdict == "no Redis" else GIVE_UP_SECONDS):
                    log.warning("process %d region %d: %s for %.0f s; stopping", self.job.pid,
                                self.job.region, verdict, now - since)
                    os._exit(1)
            time.sleep(BEAT_SECONDS)

    def _beat(self) -> str:
        try:
            verdict, done = self.ctl.region_beat(self.job, self.daemon, **self.progress)
        except DiskFull:                      # nothing can end or fence us meanwhile: go on (Control.reap waits)
            return "ok"
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


class Keeper:
    """The worker's side of its running sandbox: answers its requests and
    records what it reports, until its result or its end."""

    def __init__(self, ctl: Control, job: Job, beat: Heartbeat, jail: Jail, policy: Policy, verbose: bool):
        self.ctl, self.job, self.beat, self.jail, self.policy = ctl, job, beat, jail, policy
        self.verbose = verbose
        self.channel = jail.channel
        self.rendezvous = RedisRendezvous(ctl.r, job.pid, ctl.owner(job.pid))
        self.modules = ModuleCache(build.cache_dir())
        self.running = False          # the data plane is up: notices may be sent
        self.told = False             # the notice of a problem was sent
        self.traced = 0               # bytes of event trace recorded (None: cut at TRACE_MB)
        self.rate = Series()          # delivered over time, for pcli plot (from "loaded" to the result)

    def serve(self) -> None:
        try:
            self._serve()
        except Closed:                    # the sandbox died
            self.finish("failed", self.death_reason())

    def _serve(self) -> None:
        next_watch = 0.0
        while True:
            msg = self.channel.receive(POLL_SECONDS)
            if msg is not None and self.handle(msg):
                return
            now = time.monotonic()        # by the clock: a busy sandbox's messages must not starve it
            if now >= next_watch:
                next_watch = now + POLL_SECONDS
                if self.watch():
                    return

    def watch(self) -> bool:
        """Between messages: the process limit (True: hit, the region
        failed), and the notice of a problem."""
        limit = self.policy.max_procs
        if self.jail.uid is not None and limit and self.jail.tasks() >= limit:
            self.jail.close()
            self.finish("failed", f"{where(self.job.region, self.job.engine)}: process limit of {limit} "
                                  "exceeded (processes and threads of the region's handlers)")
            return True
        problem = self.beat.problem()
        if problem and self.running and not self.told:
            self.told = True
            self.channel.send("problem", text=problem)
        return False

    def handle(self, msg: dict) -> bool:
        """One message from the sandbox; True when it was the last."""
        kind = msg["t"]
        if kind == "done":
            self.done(msg)
            return True
        if kind == "memory":
            self.beat.finished = True
            report_memory_error(self.ctl, self.job)
            return True
        if kind == "error":
            log.error("process %d region %d: the sandbox failed:\n%s", self.job.pid, self.job.region,
                      str(msg["text"])[-TRACEBACK_CHARS:])
            self.finish("failed", "region sandbox failed (a bug in pstack: the daemon's log has its traceback)")
            return True
        answer = self.answer(kind, msg)
        if answer is not None:
            self.channel.send(kind, **answer)
        return False

    def answer(self, kind: str, msg: dict) -> dict | None:
        """A request's answer (None: a report, which has none)."""
        job = self.job
        if kind in ("module", "install"):
            return self.module(kind, msg)
        if kind == "publish":
            self.rendezvous.publish(job.region, msg["curve"], msg["address"])
            return {}
        if kind == "lookup":
            endpoints, curve = self.rendezvous.lookup()
            return {"endpoints": endpoints, "curve": curve}
        if kind == "engines":
            return {"engines": self.rendezvous.engines()}
        self.report(kind, msg)
        return None

    def module(self, kind: str, msg: dict) -> dict:
        """A compiled module served ("module"), or one the sandbox built
        installed ("install"); no module when refused (pd/modules.py)."""
        try:
            if kind == "module":
                return {"so": self.modules.fetch(msg["name"])}
            self.modules.install(msg["name"], msg["so"])
        except ModuleRefused as e:
            log.warning("process %d region %d: %s", self.job.pid, self.job.region, e)
        return {"so": None}

    def report(self, kind: str, msg: dict) -> None:
        job = self.job
        if kind == "log" and self.verbose:
            self.ctl.log(job, [(str(d), int(lv), str(t)) for d, lv, t in msg["entries"]])
        elif kind == "progress":
            self.beat.progress[f"delivered:{job.region}"] = int(msg["delivered"])
            self.beat.progress[f"dropped:{job.region}"] = int(msg["dropped"])
            self.record_rate(int(msg["delivered"]))
        elif kind in ("compiling", "collecting"):
            self.beat.progress[f"phase:{job.region}"] = kind
        elif kind == "loaded":
            self.beat.progress[f"phase:{job.region}"] = "running"
            self.record_rate(0)               # the run starts
            if job.region == 0:
                self.ctl.proc_set(job, graph_type=str(msg["graph_type"]), devices=int(msg["devices"]),
                                  edges=int(msg["edges"]))
        elif kind == "started":
            self.running = True
        elif kind == "trace":
            self.trace(msg["data"])

    def record_rate(self, delivered: int, last: bool = False) -> None:
        """A point of the region's delivered count over time, into Redis
        when it is kept (psim/series.py bounds how many)."""
        if self.rate.add(time.time(), delivered, last=last):
            points, whole = self.rate.unsent()
            self.ctl.rate(self.job, points, whole)

    def trace(self, data: bytes) -> None:
        """A chunk of the region's event trace into Redis; past TRACE_MB the
        trace is cut (marked so: a replay needs it whole), the run goes on."""
        if self.traced is None:
            return
        self.traced += len(data)
        if self.traced > TRACE_MB << 20:
            self.traced, data = None, TRACE_CUT
        self.ctl.trace(self.job, data)

    def done(self, msg: dict) -> None:
        """The sandbox's result: recorded as it is (pd/results.py's packed
        record), once it is known to be well formed."""
        res = msg["result"]
        if res is not None and not isinstance(res, bytes):
            res, why = None, "not bytes"
        else:
            why = results.check(res) if res is not None else None
        if why:
            self.finish("failed", f"{where(self.job.region, self.job.engine)}: the region's result is malformed "
                                  f"({why})")
        else:
            if res is not None:               # the run's last point: its final count, reported just before
                self.record_rate(self.beat.progress[f"delivered:{self.job.region}"], last=True)
            self.finish(str(msg["status"]), str(msg["reason"]), res)

    def finish(self, status: str, reason: str, res: bytes | None = None) -> None:
        self.beat.finished = True
        counts = {k: v for k, v in self.beat.progress.items() if k.startswith(("delivered:", "dropped:"))}
        finish_when_written(self.ctl, self.job, "failed" if status == "failed" else "finished", reason, res,
                            **counts)

    def death_reason(self) -> str:
        """The sandbox ended without its result: a limit it hit (SIGXCPU,
        SIGXFSZ outside a handler), else how it died."""
        try:
            code = self.jail.proc.wait(CLOSE_GRACE_SECONDS)
        except subprocess.TimeoutExpired:           # alive: a handler closed the channel
            self.jail.close()
            return f"{where(self.job.region, self.job.engine)}: the handlers closed their channel to the worker"
        limit = self.policy.death(code)
        if limit:
            return f"{where(self.job.region, self.job.engine)}: {limit}"
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        return f"region worker died ({how})"


def finish_when_written(ctl: Control, job: Job, status: str, reason: str, res: bytes | None = None,
                        **counts: int) -> None:
    """finish_region, retried for as long as Redis refuses writes (a full
    disk; the heartbeat keeps the region alive meanwhile): its end waits
    for the disk, as its run did."""
    while True:
        try:
            return ctl.finish_region(job, status, reason, res, **counts)
        except DiskFull as e:
            log.warning("process %d region %d: %s; retrying", job.pid, job.region, e)


def run_region(ctl: Control, job: Job, beat: Heartbeat, jail: Jail) -> None:
    rec = ctl.process(job.pid)
    if rec is None or rec["state"] != "running" or ctl.token(job.pid) != job.token:
        return                                   # killed, gone or stale before we started
    try:
        opts, limits = region_limits(job, rec)
    except Refused as e:
        ctl.finish_region(job, "failed", f"{where(job.region, job.engine)}: {e}")
        return
    nregions = int(rec["nregions"])
    opts = replace(opts, memory_mb=limits.memory_mb,     # the engine's failures name the limit
                   region=job.region if nregions > 1 else opts.region)
    host, curve = "", False
    if nregions > 1:
        try:
            host = advertised_host(ctl.r)
            curve = curve_wanted()
        except DataPlaneError as e:
            ctl.finish_region(job, "failed", f"data plane: {e}")
            return
    if jail.uid is None:
        limits = replace(limits, procs=0)        # its uid is pd's: a process limit would bind pd too
    keeper = Keeper(ctl, job, beat, jail, Policy.from_env(), rec.get("verbose") == "1")
    jail.channel.send("limits", limits=asdict(limits))    # applied before the sandbox takes the application
    # with the client's instance form, only the graph type of the XML is needed (pd/form.py); a
    # traced run's trace names the whole application's hash
    try:
        form = None if opts.trace else placed_form(ctl, job, jail)
    except BadInput as e:
        ctl.finish_region(job, "failed", str(e))
        return
    app = ctl.app_head(job.pid) if form is not None else ctl.app(job.pid)
    jail.channel.send("job", app=app, instance=form, partition=ctl.partition(job.pid), rmap=rec.get("rmap", "{}"),
                      nregions=nregions, region=job.region, pid=job.pid, token=job.token, engine=job.engine,
                      options=asdict(opts), verbose=keeper.verbose, host=host, curve=curve,
                      debugger=int(rec["debugger"]) if rec.get("debugger") else None)
    keeper.serve()


# ---- resource limits (pd/limits.py, psim/limits.py) ----------------------------------

def placed_form(ctl: Control, job: Job, jail: Jail) -> str | None:
    """The client's instance form, if it sent one, written into the
    sandbox's folder (pd/form.py): its file name.  BadInput if it is not one."""
    try:
        form = ctl.instance(job.pid)
    except zlib.error:
        raise BadInput("the instance form sent with the application is not zlib-compressed") from None
    return place(form, jail.home) if form is not None else None


def region_limits(job: Job, rec: dict) -> tuple[Options, Limits]:
    """The process's psim options, and the limits this daemon gives its region."""
    opts = Options.from_dict(json.loads(rec.get("options", "{}")))
    return opts, Policy.from_env().limits(opts.memory_mb, job.engine)


def report_memory_error(ctl: Control, job: Job) -> None:
    """Python itself was refused memory: loading the application, keeping
    its log lines or shaping its result (a handler's would be the engine's)."""
    limit = region_limits(job, ctl.process(job.pid) or {})[1].memory_mb
    what = f"memory limit of {limit} MB exceeded" if limit else "out of memory"
    ctl.finish_region(job, "failed", f"{where(job.region, job.engine)}: {what} "
                      "(in psim: loading the application, keeping its log or shaping its result)")


def main(argv: list[str] | None = None) -> int:
    """Run the region named on the command line, or (a spare) the one named
    on the first line of stdin; end quietly if stdin closes first."""
    die_with_parent()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s pd.worker %(message)s")
    jail = Jail()                 # now: its imports overlap the wait for a job
    try:
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
            run_region(ctl, job, beat, jail)
        except MemoryError:       # the worker has no memory limit, but one could still come from the OS
            report_memory_error(ctl, job)
        except DiskFull as e:     # a write refused for PATIENCE_SECONDS: the region fails with the reason
            jail.close()
            finish_when_written(ctl, job, "failed", f"{where(job.region, job.engine)}: {e}")
    finally:
        jail.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
