"""psim --threads N: every core in one process.  The loaded instance is
split by METIS (psim/partition.py) into N regions and run by N compiled
engines, one region each, in N threads (cffi releases the GIL while an
engine runs, so Python only holds it between batches).

The engines share the one loaded instance: the device table, the CSR's
offsets and the per-type property and state arrays are the instance's (an
engine writes only its own devices' state and its own edges' state, so no
locks), while each has its own edge flags and remote lists (RegionCSR,
core/loader.cpp pl_region).  The final states are read once, from the
shared arrays, when every thread is done.

The threads run pd/region.py's RegionRun over broker/localplane.py, as
pcli/standalone.py runs a C and a Python region: the region protocol is the
cluster's, so termination (pd/termination.py), hardware-idle rounds,
handler_exit, failures (the first region to fail gives the run its reason,
and the others are stopped) and the supervisor (in region 0) behave as in
a process split across hosts.  Records between threads travel per batch:
a region's outbox for another, copied once into the plane's queue (the
view is valid only until that engine's next call), then checked and queued
by the receiving engine in C.
"""
from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Any, Callable, Sequence

from broker import wire
from broker.localplane import LocalPlane, local_planes
from pcli.standalone import Ends
from pd.region import RegionRun

from .engine import FAIL_TIMEOUT, Engine, Options
from .errors import BadInput
from .partition import split
from .reader import unserved_externals
from .progress import QUIET, Quiet
from .run import INTERRUPTED, BatchHook, Loaded, LogSink, Outcome, Slices, drain_logs, each, result, run_loaded
from .topology import RegionCSR, finish_edges


# Events per call into an engine.  A record for another thread leaves when
# its sender's call returns and is taken when the receiver's returns, so
# each crossing may wait up to two calls: the cluster's batch (run.BATCH,
# 1M events) made the heat grid of bench/heat.py, whose boundary crosses
# every round, slower in 2 threads than in 1; 65,536 keeps a crossing under
# a millisecond for ~15% of the mesh's rate (performance.md, "Threads").
THREAD_BATCH = 1 << 16


def run_threads(loaded: Loaded, opts: Options, rmap: dict | None, on_log: LogSink | None,
                progress: Quiet = QUIET, on_batch: Sequence[BatchHook] = ()) -> dict:
    """Run `loaded` in opts.threads threads (at most one per device) and
    return one result as a single engine's: states of all devices, metrics
    summed over the threads (deliveries, sends, steps, remote records: see
    pcli.api.merge), the per-thread metrics under "regions".  progress
    and on_batch as run_loaded's: every thread calls the hooks after each
    of its batches.  Ctrl-C (in the main thread, region 0's) ends region
    0, the others end as they would after any region's end, and the run
    is "interrupted"."""
    if rmap or opts.region is not None:
        raise BadInput("--threads splits the application itself: give no region map or region")
    if opts.trace:
        raise BadInput("a run in threads cannot be traced: trace it in one thread (a replay runs one engine)")
    inst = loaded.instance
    n = min(opts.threads, inst.n_devices)
    if n <= 1:
        return run_loaded(loaded, replace(opts, threads=1), on_log=on_log, progress=progress, on_batch=on_batch)
    unserved_externals(inst, lambda dev: True)
    loaded.take()
    with progress.during(f"splitting for {n} threads"):
        finish_edges(inst, None, 0)       # the whole CSR, once: METIS reads it, every region copies its flags
        regions = split(inst, n)
        engines = [Engine(loaded.module, inst, opts, regions, r, n, 0, RegionCSR(inst, regions, r)) for r in range(n)]
    log: list = []
    sink = on_log or (lambda d, lv, t: log.append((d, lv, t)))      # list.append is atomic: one log for all
    planes = [LoggedPlane(p, e, sink) for p, e in zip(local_planes(n), engines)]
    ends = Ends()
    running = progress.running()
    hooks = each([running, *on_batch])

    def run(r: int) -> Outcome:
        return ends.after(r, _run_region, engines[r], planes[r], sink, opts.timeout, ends.watch(r), hooks)

    with ThreadPoolExecutor(n - 1, thread_name_prefix="psim-region") as pool:
        others = [pool.submit(run, r) for r in range(1, n)]
        t0 = time.perf_counter()
        try:
            first = run(0)
        except KeyboardInterrupt:
            first = Outcome("interrupted", INTERRUPTED, None, 0, time.perf_counter() - t0)
            _stop(engines[0], others)
        outs = [first] + [f.result() for f in others]
    running.end(first.status)
    with progress.during("decoding states"):
        states = engines[0].states(everywhere=True)
    res = ends.merged({r: result(loaded, engines[r], outs[r], log if r == 0 else [], states if r == 0 else {})
                       for r in range(n)})
    res["metrics"]["Threads"] = n
    if first.status == "interrupted":          # the others ended because region 0 did: theirs is no failure
        res["status"], res["metrics"]["Exit code"] = first.status, first.exit_code
        res.pop("error", None)
    in_handler = [out for e, out in zip(engines, outs) if out.kind == FAIL_TIMEOUT and e.outcome().fail_handler]
    if res["status"] == "failed" and in_handler:
        res["error"] = in_handler[0].error      # one deadline for all: say where a handler was stuck, as one engine does
    return res


def _stop(engine: Engine, others: list[Future]) -> None:
    """After Ctrl-C in region 0, until the other threads end: they see its
    end at their next look, but one may be in a handler that never returns
    (told again and again: it may have been between calls when told)."""
    while True:
        try:
            engine.interrupt()
            if not wait(others, timeout=0.1).not_done:
                return
        except KeyboardInterrupt:          # a thread told as it left its engine: Python heard it too
            continue


def _run_region(engine: Engine, plane: LocalPlane, on_log: LogSink, timeout: float,
                watch: Callable[[], str | None], on_batch: BatchHook) -> Outcome:
    region = RegionRun(engine, plane, on_log, timeout, watch=watch)
    region.on_batch = Sized(region, on_batch)
    return region.run()


class Sized:
    """A region's on_batch: its batches sized as drive's (run.Slices), up
    to THREAD_BATCH, so that Ctrl-C is seen soon in region 0 and the others
    see its end soon; then the run's on_batch.  The time between two calls
    is one batch's (and its records'); only full batches (the engine ran
    all it was given) size the next."""

    def __init__(self, region: RegionRun, on_batch: BatchHook):
        self.region, self.on_batch = region, on_batch
        self.slices = Slices(THREAD_BATCH)
        region.batch = self.slices.size
        self.steps, self.t = 0, time.perf_counter()

    def __call__(self, engine: Engine) -> None:
        now, steps = time.perf_counter(), engine.outcome().steps
        if steps - self.steps >= self.region.batch:      # not the calls that ran out of work, which waited too
            self.slices.ran(now - self.t, True)
        self.region.batch, self.steps, self.t = self.slices.size, steps, now
        self.on_batch(engine)


class LoggedPlane(LocalPlane):
    """A region's end of the in-process plane that hands on its engine's
    log lines before it sends records: a line logged before a send comes
    before every line the send causes in another thread, as with one engine."""

    def __init__(self, plane: LocalPlane, engine: Engine, sink: LogSink):
        super().__init__(plane.region, plane.inboxes)
        self.engine, self.sink = engine, sink

    def send(self, to: int, kind: int, payload: Any) -> None:
        if kind == wire.MSG:
            drain_logs(self.engine, self.sink)
        super().send(to, kind, payload)
