"""A region's sandbox: the process that runs the application's handlers
(started by pd/jail.py, driven by pd/worker.py).

It holds no credentials and no Redis connection: the worker sends it the
job (the application, partition, options, limits, data-plane address),
and it sends back what the worker records (log batches, progress, the
result), asks it for compiled modules (pd/modules.py) and for the data
plane's rendezvous.  The data plane's sockets live here: the regions'
frames go straight between sandboxes, never through a worker.

    python -m pd.sandbox WORKER_PID CHANNEL_FD UID|-     (pd/jail.py starts it)
"""
from __future__ import annotations

import json
import os
import socket
import sys
import sysconfig
import time
import traceback
from array import array
from pathlib import Path

import cffi

from broker.dataplane import DataPlane, DataPlaneError
from psim import build, instcache, trace
from psim import limits as rlimits
from psim.engine import FAIL_FILE_SIZE, FAIL_MEMORY, Engine, Options
from psim.errors import BadInput
from psim.limits import Limits
from psim.run import InstanceReader, Loaded, Outcome, drive, result

from . import results
from .channel import Channel, Closed
from .form import from_form
from .jail import become, die_with_parent, no_new_privs, private_tmp
from .limits import where
from .region import RegionRun

LOG_BATCH = 500
PROGRESS_SECONDS = 0.2        # at most this often; the worker's heartbeat writes it every 0.5 s
NOTICE_SECONDS = 0.1          # how often a multi-region run looks for the worker's notices


class WorkerStore:
    """psim/build.py's Store in a sandbox: modules come from the worker,
    and are built here, in the private folder, on a miss."""

    def __init__(self, channel: Channel, home: Path):
        self.channel, self.home = channel, home

    def find(self, name: str) -> Path | None:
        data = self.channel.request("module", name=name)["so"]
        if data is None:
            return None
        folder = Path(self.home / name)
        folder.mkdir(exist_ok=True)
        so = folder / build.so_name(name)
        so.write_bytes(data)
        return so

    def scratch(self) -> Path:
        return self.home

    def publish(self, name: str, built: Path) -> Path:
        so = built / build.so_name(name)
        self.channel.request("install", name=name, so=so.read_bytes())     # refused: still ours to use
        return so


class WorkerRendezvous:
    """broker/dataplane.py's Rendezvous, through the worker."""

    def __init__(self, channel: Channel):
        self.channel = channel

    def publish(self, region: int, curve: str, address: str) -> None:
        self.channel.request("publish", curve=curve, address=address)

    def lookup(self) -> tuple[dict[int, str], dict[int, str]]:
        answer = self.channel.request("lookup")
        return answer["endpoints"], answer["curve"]

    def engines(self) -> dict[int, str]:
        return self.channel.request("engines")["engines"]


class Reports:
    """What the running region tells its worker: log batches (verbose),
    progress (at most every PROGRESS_SECONDS), and, in a multi-region run,
    the worker's notice that the process cannot end well (watch())."""

    def __init__(self, channel: Channel):
        self.channel = channel
        self.buf: list[tuple[str, int, str]] = []
        self.plane: DataPlane | None = None
        self.next_progress = self.next_notice = 0.0
        self.problem: str | None = None

    def log(self, device: str, level: int, text: str) -> None:
        self.buf.append((device, level, text))
        if len(self.buf) >= LOG_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            self.channel.send("log", entries=self.buf)
            self.buf = []

    def progress(self, engine: Engine, final: bool = False) -> None:
        """The counts so far, at most every PROGRESS_SECONDS; `final`: now."""
        now = time.monotonic()
        if final or now >= self.next_progress:
            self.next_progress = now + PROGRESS_SECONDS
            self.channel.send("progress", delivered=engine.outcome().delivered,
                              dropped=self.plane.dropped if self.plane else 0)

    def watch(self) -> str | None:
        now = time.monotonic()
        if now >= self.next_notice:
            self.next_notice = now + NOTICE_SECONDS
            while self.channel.ready(0):
                notice = self.channel.receive()
                if notice["t"] == "problem":
                    self.problem = notice["text"]
        return self.problem


def run(channel: Channel, job: dict) -> None:
    """The region of `job`, to its "done" message."""
    opts = Options.from_dict(job["options"])
    nregions, debugger = job["nregions"], job.get("debugger")     # the debugger's place is not a region of devices
    try:
        watchers = debugger is not None or bool(opts.trace)
        form = job.get("instance")           # its file, which the worker put in our folder (pd/form.py)
        read = from_form(Path.cwd() / Path(form).name) if form else instcache.read
        loaded = Loaded(job["app"].decode(), watchers=watchers, read=reporting(channel, read))
        part = array("H", job["partition"]) if job["partition"] is not None else None
        engine = loaded.engine(opts, json.loads(job["rmap"]), part, nregions - (debugger is not None))
    except BadInput as e:
        channel.send("done", status="failed", reason=str(e), result=None)
        return
    inst = loaded.instance
    channel.send("loaded", graph_type=inst.graph.id, devices=inst.n_devices, edges=inst.n_edges)
    if opts.trace:               # region 0 heads the process's trace file (pcli.trace)
        if job["region"] == 0:
            channel.send("trace", data=trace.head_chunks(inst, engine, opts))
        trace.record(engine, lambda data: channel.send("trace", data=data))
    reports = Reports(channel)
    collected: list = []
    on_log = reports.log if job["verbose"] else (lambda d, lv, t: collected.append((d, lv, t)))
    if nregions > 1:
        try:
            reports.plane = DataPlane(WorkerRendezvous(channel), job["pid"], job["token"], job["region"],
                                      nregions, job["host"], job["curve"])
        except (DataPlaneError, ValueError) as e:
            channel.send("done", status="failed", reason=f"data plane: {e}", result=None)
            return
        channel.send("started")                 # from now on the worker may send notices
        try:
            out = RegionRun(engine, reports.plane, on_log, opts.timeout, reports.progress, reports.watch,
                            debugger).run()
        finally:
            reports.plane.close()
    else:
        out = drive(engine, on_log, opts, reports.progress)
    reports.flush()
    reports.progress(engine, final=True)       # the counts recorded with the result are the whole run's
    channel.send("collecting")
    if opts.trace:
        channel.send("trace", data=trace.end_chunk(engine, out.status, out.exit_code, out.error))
    states = results.packed_states(engine)
    res = result(loaded, engine, out, collected, states={})    # not decoded: the record carries them packed
    if reports.plane:
        res["metrics"]["Dropped frames"] = reports.plane.dropped
    # packed (pd/results.py): the worker records it as it is, and nobody
    # decodes a million device states unless a reader asks for them
    channel.send("done", status="failed" if out.status == "failed" else "finished",
                 reason=failure_reason(job, out), result=results.pack(res, states))


def reporting(channel: Channel, read: InstanceReader) -> InstanceReader:
    """The instance reader `read`, telling the worker when it is done: what
    is left of loading then is the compile of the handlers (a thread of
    Loaded's, which began with the read)."""
    def reading(*args):
        got = read(*args)
        channel.send("compiling")
        return got
    return reading


def failure_reason(job: dict, out: Outcome) -> str:
    """The engine's reason; a limit it caught names the region and engine too."""
    if out.kind in (FAIL_MEMORY, FAIL_FILE_SIZE):
        return f"{where(job['region'], job['engine'])}: {out.error}"
    return out.error or ""


def prepare() -> None:
    """What needs root's reach (pstack and Python may be installed where the
    sandbox's user cannot read), done before becoming that user: psim's
    runtime read, its headers and Python's opened for g++, lazy imports done."""
    fds = tuple(os.open(d, os.O_RDONLY | os.O_DIRECTORY) for d in build.INCLUDE_DIRS)
    build.INCLUDE_DIRS, build.PASS_FDS = [f"/proc/self/fd/{fd}" for fd in fds], fds
    build.runtime_digest()
    build.core_text("loader_api.h")
    cffi.FFI().cdef("int f(void);")             # imports cffi's C parser
    sysconfig.get_config_var("EXT_SUFFIX")      # imports the platform's sysconfig data


def main(argv: list[str]) -> int:
    parent, fd, uid = int(argv[0]), int(argv[1]), argv[2]
    prepare()
    channel = Channel(socket.socket(fileno=fd))
    try:
        limits = Limits(**channel.receive()["limits"])    # the worker's, read as root: they size the tmpfs
    except Closed:
        return 0                                # a spare's worker ended without a job
    try:
        private_tmp(limits.memory_mb)           # needs root (or a user namespace of its own): before become()
        if uid != "-":
            become(int(uid))
        no_new_privs()
        die_with_parent(parent)                 # after become(): a change of user clears it
        build.STORE = WorkerStore(channel, Path.cwd())
        # before the application comes (it counts), and before g++ or any application code runs
        rlimits.apply(limits)
        run(channel, channel.receive())
    except MemoryError:
        channel.send("memory")
    except Closed:
        return 1
    except Exception:                           # a bug of ours: the worker logs it
        channel.send("error", text=traceback.format_exc())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
