"""The pstack Python API, with the seed's names:

    run(xml, rmap={}, rcon={}, verbose=False, level=1, async_=False, **options)
    block(future_or_list), ps(), kill(pid, force=False), engines(), info(pid), result(pid)
    graph(xml), info(pid, regions=True)      what an application is made of, how a process splits it
    processes(all, user, states), purge(pids, all, older_than, force)
    series(pid)                              each region's delivered count over time (pcli plot)

The connection comes from $PSTACK_REDIS (default redis://localhost:6379/0).
Functions return data; the shell prints it.
"""
from __future__ import annotations

import functools
import itertools
import threading
from array import array
import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import redis

from broker import acl, config, keys
from broker.control import APP, SUBMIT_LEASE, TRACE_CUT, Control, connect, phase
from broker.credentials import redis_url
from psim import trace as psim_trace
from psim.engine import Options
from psim.errors import BadInput
from psim.inspect import graph, split_by, topology
from psim.partition import partition
from psim.reader import Instance, Source, read_graph_type
from psim.run import load_instance
from psim.series import unpack as unpack_series

from pd import results as records
from pd.form import of_file as instance_form

from .engine import Engine

__all__ = ["Engine", "run", "block", "ps", "kill", "purge", "engines", "info", "result", "processes", "graph",
           "trace", "series", "Future"]

_controls: dict[str, Control] = {}
SHARED = ("Devices", "Edges", "Hardware idle rounds", "Load time (s)", "Compile time (s)", "Run time (s)")
POLL_MS = 500
OUTAGE_SECONDS = 30            # how long a waiting client rides out an unreachable Redis
RENEW_SECONDS = SUBMIT_LEASE / 6     # how often a submitting client renews its lease


class NotAllowed(PermissionError):
    """What this user may not do to others' processes; the message names
    what would allow it on an open cluster: force=True here, the shell's
    own flag there (message())."""

    def __init__(self, what: str):
        self.what = what
        super().__init__(self.message("force=True"))

    def message(self, flag: str) -> str:
        return f"{self.what} (on an open cluster: {flag})"


def control() -> Control:
    """The control plane of $PSTACK_REDIS, one client per URL."""
    url = redis_url()
    if url not in _controls:
        _controls[url] = Control(connect(url))
    return _controls[url]


def user() -> str:
    """Who this client is: its Redis identity (broker/acl.py; in open mode,
    $PSTACK_USER or the login name)."""
    return acl.whoami(control().r)


class Future:
    """A submitted process; `.pid` as in the seed, `.result()` waits for it."""

    def __init__(self, pid: int, verbose: bool = False, echo=None, token: str | None = None):
        self.pid = pid
        self.token = token            # the incarnation submitted; None: whichever has this pid
        self.verbose = verbose
        self.echo = echo or functools.partial(print, flush=True)     # where verbose log lines go
        self._log_pos = "0-0"

    def done(self) -> bool:
        return info(self.pid)["state"] in keys.ENDED

    def result(self, timeout: float | None = None, states: bool = True) -> dict:
        """Wait for the process to end and return its result (states=False:
        without the devices' states, see result()).  A Redis restart
        meanwhile is waited out (up to OUTAGE_SECONDS)."""
        deadline = time.monotonic() + timeout if timeout is not None else None
        seen, outage = "$", None
        while True:
            try:
                res, seen = self._poll(seen, states)
                outage = None
            except (redis.ConnectionError, redis.TimeoutError):     # restarting, or stalled
                outage = outage or time.monotonic()
                if time.monotonic() - outage > OUTAGE_SECONDS:
                    raise
                time.sleep(POLL_MS / 1000)
                res = None
            if res is not None:
                return res
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"process {self.pid} is still {info(self.pid)['state']}")

    def _poll(self, seen: str, states: bool) -> tuple[dict | None, str]:
        """The result if the process ended, else wait a little for an event."""
        ctl = control()
        if seen == "$":
            seen = ctl.last_event()
        if self.verbose:
            self.print_log()
        rec = ctl.process(self.pid)
        if rec is None or (self.token is not None and ctl.token(self.pid) != self.token):
            raise ValueError(f"no process {self.pid}" + (" (lost by the control plane)" if self.token else ""))
        if rec["state"] in keys.ENDED:
            if self.verbose:
                self.print_log()
            return result(self.pid, states), seen
        return None, ctl.wait_event(seen, POLL_MS)

    def print_log(self) -> int:
        """Print the log lines streamed since the last call; how many."""
        lines = control().read_log(self.pid, self._log_pos)
        for self._log_pos, e in lines:
            self.echo(f"[{e['engine']}:{e['region']}] {e['device']}: {e['text']}")
        return len(lines)

    def __repr__(self) -> str:
        return f"<Future pid={self.pid}>"


def run(xml: str | Path, rmap: dict | None = None, rcon: dict | None = None, verbose: bool = False,
        level: int | None = None, async_: bool = False, on_pid: Callable[[int], None] | None = None,
        **options: Any):
    """Start a process.  Returns its result dict, or a Future when async_.

    The pid exists before the application is partitioned and uploaded (in
    phase partitioning, then uploading, in ps and info): on_pid(pid) is
    called then.  If this call fails or is interrupted before the process
    is queued, the process is killed with the reason.

    rmap: {device id: region} (unmapped devices are in region 0); or
    regions=N: N balanced regions with few cut edges (METIS); rcon:
    {region: engine name, or a pcli.Engine that serves the region from this
    client (async_ only: then call its run())}; externals: a pcli.Engine
    that serves the external devices (<ExtI> but __halt__), in a region of
    their own.  paused: the process starts paused before its first event,
    for a debugger (debug(pid), docs/debugging.md) to attach within a
    minute; it has no timeout.  Other options go to psim (order, seed, timeout, max_steps,
    memory_mb: the memory in MB each region's application may use, else
    the engine's default; more than an engine's maximum fails the
    process; trace=True: record every event of every region, for
    trace(pid, FILE) and `psim --replay FILE`).  Options not given (level:
    1) come from the configuration file's [run] table (broker/config.py),
    but for its regions when an rmap is given."""
    defaults = {k: v for k, v in config.run_defaults().items() if not (k == "regions" and rmap)}
    options = {**defaults, **({"level": level} if level is not None else {}), **options}
    level = options.pop("level", 1)
    async_ = bool(options.pop("async", async_))
    externals = options.pop("externals", None)
    paused = bool(options.pop("paused", False))
    regions = int(options.pop("regions", 0) or 0)
    rmap = {str(k): int(v) for k, v in (rmap or {}).items()}
    apps = {int(k): v for k, v in (rcon or {}).items() if isinstance(v, Engine)}
    rcon = {int(k): APP if isinstance(v, Engine) else str(v) for k, v in (rcon or {}).items()}
    if (apps or externals is not None) and not async_:
        raise ValueError("a process with application engines runs with async_=True: then call engine.run()")
    if regions and rmap:
        raise ValueError("give rmap or regions, not both")
    if options.get("trace") not in (None, False, True):
        raise ValueError("trace=True records a process's trace on the cluster (fetch it with pcli.trace(pid, FILE))")
    if options.get("trace") and (apps or externals is not None):
        raise ValueError("trace=True: a region served by a Python application engine records no trace, and a "
                         "replay needs every region's; trace processes whose regions all run on engines")
    opts = {"level": level, **options}
    Options.from_dict(opts)                    # unknown options fail here, not in a worker
    src = Source(xml)                          # a file (.xml or .xml.gz) or XML text
    with src.open() as f:
        app = f.read()
    ctl, me = control(), user()
    nregions = max([*rmap.values(), *rcon.keys(), regions - 1, 0]) + 1
    inst = None
    if externals is not None:                  # one more region: the external devices, in the engine
        inst = load_instance(app.decode())
        if regions <= 1:                       # they go into the region map, which create() records
            bind_externals(inst, externals, nregions, rmap, None)
        apps[nregions], rcon[nregions] = externals, APP
        nregions += 1
    record = {"rmap": rmap, "options": opts, "verbose": int(verbose), "app_name": src.name}
    if paused:                                 # the debugger's place on the data plane: the last
        record["debugger"], rcon[nregions] = nregions, APP
    first = "partitioning" if regions > 1 else "uploading"
    pid, token = ctl.create(me, nregions + paused, rcon, record, first)
    with submitting(ctl, me, pid, first) as tell:
        if on_pid:
            on_pid(pid)
        app_key, split, form = send_app(ctl, me, src, app, regions, bool(opts.get("trace")), tell)
        if inst is not None and split is not None:
            split = bind_externals(inst, externals, nregions - 1, rmap, split)
        ctl.queue(me, pid, app_key, split, form)
    future = Future(pid, verbose, token=token)
    for region, eng in apps.items():
        eng.bind(future, region, app, rmap, split, nregions, float(opts.get("timeout") or 0),
                 nregions if paused else None)
    return future if async_ else future.result()


@contextmanager
def submitting(ctl: Control, me: str, pid: int, first: str) -> Iterator[Callable[..., None]]:
    """While process `pid` is being submitted: its lease renewed every
    RENEW_SECONDS (in a thread: partitioning holds this one), and tell(phase,
    **counts) to say how far it got.  If the block fails (or is
    interrupted), the process is killed with the reason."""
    state = {"phase": first, "counts": {}}
    lock, stop = threading.Lock(), threading.Event()

    def tell(phase: str, **counts: int) -> None:
        with lock:
            state.update(phase=phase, counts=counts)
        ctl.prepare(me, pid, phase, **counts)

    def renew() -> None:
        while not stop.wait(RENEW_SECONDS):
            with lock:
                phase, counts = state["phase"], state["counts"]
            try:
                ctl.prepare(me, pid, phase, **counts)
            except (ValueError, redis.RedisError, TimeoutError):
                return                         # ended (killed), or no Redis: the submission says so
    renewer = threading.Thread(target=renew, daemon=True, name=f"lease {pid}")
    renewer.start()
    try:
        yield tell
    except BaseException as e:
        why = "interrupted" if isinstance(e, KeyboardInterrupt) else str(e) or type(e).__name__
        try:
            ctl.kill(me, pid, why=f"its submission failed: {why}"[:300])
        except (ValueError, redis.RedisError, TimeoutError):
            pass                               # its lease runs out: the scheduler fails it
        raise
    finally:
        stop.set()
        renewer.join()


def send_app(ctl: Control, me: str, src: Source, app: bytes, regions: int, traced: bool,
             tell: Callable[..., None]) -> tuple[str, bytes | None, str | None]:
    """The application uploaded, its partition (split_app: told as soon as
    it is known) and its instance form's upload key."""
    with ThreadPoolExecutor(1) as pool:        # the XML's upload (zlib, the socket: no GIL) overlaps partitioning it
        uploading = pool.submit(ctl.upload, me, app)
        split, form = split_app(src, app, regions, traced)
        if split is not None:
            tell("uploading", devices=len(split) // 2)
        form_key = ctl.upload(me, form) if form is not None else None
        return uploading.result(), split, form_key


def split_app(src: Source, app: bytes, regions: int, traced: bool) -> tuple[bytes | None, bytes | None]:
    """regions=N's partition, and the binary instance form of a file (read,
    and cached, to partition it): the regions load that instead of parsing
    the XML (pd/form.py).  None for what there is not (a traced run's
    regions read the XML: its trace names the whole application)."""
    if regions <= 1:
        return None, None
    split = partition(src.path or app.decode(), regions).tobytes()
    return split, instance_form(src.path) if src.path is not None and not traced else None


def bind_externals(inst: Instance, engine: Engine, region: int, rmap: dict, split: bytes | None) -> bytes | None:
    """Put every external device (<ExtI>, but __halt__) in `region`, which
    `engine` serves: in rmap, or in the computed partition.  Returns the
    partition.  The one rule for both the cluster and psim standalone
    (pcli/standalone.py)."""
    if not isinstance(engine, Engine):
        raise TypeError("externals= takes a pcli.Engine")
    if not inst.externals:
        raise BadInput("an engine to serve external devices was given, but the application has none",
                       inst.source.name)
    if split is None:
        rmap.update({inst.ids[d]: region for d in inst.externals})
        return None
    regions = array("H", split)
    for d in inst.externals:
        regions[d] = region
    return regions.tobytes()


def block(futures):
    """Wait for one Future (or pid), or a list of them; their results."""
    if isinstance(futures, Iterable) and not isinstance(futures, (str, bytes)):
        return [block(f) for f in futures]
    return (futures if isinstance(futures, Future) else Future(int(futures))).result()


def ps(all: bool = False) -> list[int]:
    """Pids of waiting and running processes (every user's); all=True adds ended ones."""
    ctl = control()
    pids = ctl.pids()
    if all:
        return pids
    return [p for p, s in zip(pids, ctl.states(pids)) if s not in keys.ENDED]


def processes(all: bool = False, user: str | None = None, states: Iterable[str] = ()) -> list[dict]:
    """info() of every waiting and running process (all=True: every
    process); only `user`'s, and only those in `states` (any of
    keys.STATES; an ended one implies all), when given."""
    states = set(states)
    if states - set(keys.STATES):
        raise ValueError(f"unknown state {', '.join(sorted(states - set(keys.STATES)))} "
                         f"(states: {', '.join(keys.STATES)})")
    ctl = control()
    pids = ctl.pids()
    if states or not all:
        wanted = states or set(keys.STATES) - set(keys.ENDED)
        pids = [p for p, s in zip(pids, ctl.states(pids)) if s in wanted]
    records = (ctl.process(pid) for pid in pids)
    return [_info(rec) for rec in records                         # one may vanish (purged) meanwhile
            if rec is not None and user in (None, rec["owner"])]


def kill(pid: int, force: bool = False) -> bool:
    """Kill a process: your own; an admin, anyone's.  On an open cluster
    (no identities) another user's process needs force=True (NotAllowed
    otherwise)."""
    outcome = control().kill(user(), pid, force)
    if outcome == "nosuch":
        raise ValueError(f"no process {pid}")
    if outcome == "notyours":
        raise NotAllowed(f"process {pid} belongs to {control().owner(pid)}: only its owner or an admin may kill it")
    return outcome == "killed"


def purge(pids: Iterable[int] = (), all: bool = False, older_than: float | None = None,
          force: bool = False) -> dict:
    """Remove ended processes (record, result, log): `pids`; else your
    ended processes (all=True: everyone's, for an admin, or with force=True
    on an open cluster), those that ended more than `older_than` seconds ago
    when given.  {"purged": [pid, ...], "refused": {pid: why}}; NotAllowed
    for all=True without the right.  Ended processes also expire by themselves
    ($PSTACK_RESULT_TTL on the scheduler, default 7 days)."""
    pids = tuple(int(p) for p in pids)
    if pids and (all or older_than is not None):
        raise ValueError("purge takes pids, or all/older_than, not both")
    before = time.time() - older_than if older_than is not None else None
    got = control().purge(user(), pids, all, before, force)
    if "denied" in got:
        raise NotAllowed("only an admin may purge every user's processes")
    why = {"nosuch": "no such process", "notyours": "not yours (its owner or an admin may purge it)"}
    got["refused"] = {pid: why.get(w, f"still {w}") for pid, w in got["refused"].items()}
    return got


def engines() -> list[dict]:
    """Registered engines: name, host, kind, slots, used, cpu, mem, mem_total (the host's),
    workers_cpu, workers_mem (its workers', docs/protocol.md), heartbeat_age, alive."""
    return control().engines()


def info(pid: int, regions: bool = False) -> dict:
    """The process record: state, reason, owner, engines of its regions, sizes,
    times; while waiting, its queue position (1: first) and, when it holds the
    reservation and its start time is known, expected_start.  regions=True
    adds "split": how its regions divide the application (region_split)."""
    ctl = control()
    rec = _record(ctl, pid)
    out = _info(rec)
    if regions:
        out["split"] = region_split(ctl, rec)
    return out


def region_split(ctl: Control, rec: dict) -> dict:
    """psim.inspect.split_by of a process's application by its region map
    or partition, as its workers split it, with the engine of each region
    (None until the region is placed).  Reads the application: its
    owner's (and admins') only."""
    pid = int(rec["pid"])
    with owners_only(rec, "application"):
        app, part = ctl.app(pid), ctl.partition(pid)
    src = Source(app.decode())
    src.name = rec.get("app_name") or src.name       # errors name the file it was submitted from
    inst = load_instance(src)
    out = split_by(inst, topology(inst), json.loads(rec.get("rmap", "{}")), part, int(rec["nregions"]))
    for r in out["regions"]:
        r["engine"] = rec["regions"].get(r["region"])
    return out


def _record(ctl: Control, pid: int) -> dict:
    rec = ctl.process(int(pid))
    if rec is None:
        raise ValueError(f"no process {pid}")
    return rec


@contextmanager
def owners_only(rec: dict, what: str) -> Iterator[None]:
    """Reading a process's private keys: Redis's refusal told as who may read `what`."""
    try:
        yield
    except redis.exceptions.NoPermissionError:
        raise PermissionError(f"process {rec['pid']} belongs to {rec['owner']}: only its owner may read its "
                              f"{what}") from None


def _info(rec: dict) -> dict:
    # a debugger's place on the data plane (run --paused) is the last, and no region of devices
    debugger = int(rec["debugger"]) if rec.get("debugger") else None
    out = {"pid": int(rec["pid"]), "owner": rec["owner"], "state": rec["state"], "phase": phase(rec),
           "reason": rec.get("reason", ""),
           "app": rec.get("app_name", ""), "graph_type": rec.get("graph_type", ""),
           "devices": int(rec.get("devices", 0)), "edges": int(rec.get("edges", 0)),
           "regions": int(rec["nregions"]) - (debugger is not None),
           "engines": {r: e for r, e in rec["regions"].items() if r != debugger},
           "rmap": json.loads(rec.get("rmap", "{}")), "options": json.loads(rec.get("options", "{}")),
           "delivered": sum(int(v) for k, v in rec.items() if k.startswith("delivered:")),
           "dropped": sum(int(v) for k, v in rec.items() if k.startswith("dropped:"))}
    for t in ("created", "started", "ended"):
        out[t] = float(rec[t]) if rec.get(t) else None
    # a waiting process's place in the queue, and the scheduler's note (removed when it leaves the queue)
    out["position"] = int(rec["position"]) if rec.get("position") else None
    out["expected_start"] = float(rec["expected_start"]) if rec.get("expected_start") else None
    return out


def result(pid: int, states: bool | int = True) -> dict | None:
    """The result of an ended process (None while it runs): psim's result
    shape, plus "state" and "reason"; regions merged (states joined, metrics
    summed).  states=False leaves out "states" (nothing is decoded: a
    million devices' states cost about a second to turn into dicts);
    states=N keeps the first N devices of each region (in its order)."""
    ctl = control()
    rec = ctl.process(int(pid))
    if rec is None:
        raise ValueError(f"no process {pid}")
    if rec["state"] not in keys.ENDED:
        return None
    with owners_only(rec, "result"):
        merged = merge(region_results(ctl, int(pid), states), states is not False)
    merged["state"] = rec["state"]
    merged["reason"] = rec.get("reason", "")
    if rec["state"] != "finished":             # failed or killed: say so even without a result
        merged["status"] = "failed" if merged.get("status") == "failed" else rec["state"]
        merged.setdefault("error", merged["reason"])
        merged["metrics"].setdefault("Exit code", 1)
    return merged


def series(pid: int) -> dict[int, list[tuple[float, int]]]:
    """Each region's delivered count over time, running or ended:
    {region: [(seconds since the epoch, delivered so far), ...]}, from when
    the region had loaded to its result, at most ~1000 points a region
    (psim/series.py); regions served by a Python engine record none."""
    ctl = control()
    rec = _record(ctl, pid)
    with owners_only(rec, "series"):
        packed = ctl.rates(int(pid), int(rec["nregions"]))
    return {r: [(float(t), int(n)) for t, n in unpack_series(data)] for r, data in packed.items()}


def trace(pid: int, path: str | Path) -> dict:
    """Write the event trace of an ended process run with trace=True to
    `path` (replay it with `psim --replay path`): {"path", "regions", "bytes"}."""
    ctl = control()
    rec = ctl.process(int(pid))
    if rec is None:
        raise ValueError(f"no process {pid}")
    if rec["state"] not in keys.ENDED:
        raise ValueError(f"process {pid} is still {rec['state']}: its trace is whole when it ends")
    if not json.loads(rec.get("options", "{}")).get("trace"):
        raise ValueError(f"process {pid} was not run with trace=True")
    nregions = int(rec["nregions"])
    with owners_only(rec, "trace"):
        regions = [list(ctl.read_trace(int(pid), r)) for r in range(nregions)]
    for r, chunks in enumerate(regions):
        if not chunks:
            raise ValueError(f"process {pid} has no trace of region {r} (it ended before it ran, or its trace "
                             "expired)")
        if chunks[-1] == TRACE_CUT:
            raise ValueError(f"the trace of process {pid}'s region {r} passed its engine's limit and was cut: "
                             "a replay needs it whole (run a shorter process, or ask for a higher PSTACK_TRACE_MB)")
    regions[0][0] = psim_trace.rename_app(regions[0][0], rec.get("app_name", ""))
    size = 0
    with open(path, "wb") as f:
        f.write(psim_trace.MAGIC)
        for chunk in (c for chunks in regions for c in chunks):
            f.write(chunk)
            size += len(chunk)
    return {"path": str(path), "regions": nregions, "bytes": size + len(psim_trace.MAGIC)}


def region_results(ctl: Control, pid: int, states: bool | int) -> dict[int, dict]:
    """Each region's result (pd/results.py's records); states decoded with
    the application's graph type when asked (the first N of each region
    for states=N), else left out."""
    out = {r: records.unpack(data, r) for r, data in ctl.results(pid).items()}
    layouts = None                             # the graph type: read once, only if a record is packed
    first = None if states is True else int(states)
    for r, res in out.items():
        res.pop("format", None)
        if states is False:
            res.pop("states", None)
        elif isinstance(res.get("states"), list):
            layouts = layouts or read_graph_type(Source(ctl.app_head(pid).decode()))[0]
            res["states"] = records.decode_states(res, layouts, r, first)
        elif first is not None and "states" in res:
            res["states"] = dict(itertools.islice(res["states"].items(), first))
    return out


def merge(results: dict[int, dict], states: bool = True) -> dict:
    """One result from the results of a process's regions: states joined,
    metrics summed, per-region metrics under "regions"; states=False: no
    "states" (the regions' results have none).  The debugger's
    place (pcli/debugger.py) has no part in it."""
    results = {r: res for r, res in results.items() if not res.get("debugger")}
    if len(results) == 1:
        return dict(next(iter(results.values())))
    out: dict = {"states": {}, "metrics": {}, "log": [], "status": "idle", "regions": {}}
    if not states:
        del out["states"]
    for region, res in sorted(results.items()):
        if states:
            out["states"].update(res.get("states", {}))
        out["log"] += res.get("log", [])
        metrics = res.get("metrics", {})
        out["regions"][region] = metrics
        for k, v in metrics.items():
            if k in SHARED:                      # the same whole-process figure in every region
                out["metrics"][k] = max(out["metrics"].get(k, 0), v)
            elif isinstance(v, (int, float)) and k not in ("Exit code", "Region"):
                out["metrics"][k] = out["metrics"].get(k, 0) + v
        if res.get("status") == "failed" or (res.get("status") == "exit" and out["status"] != "failed"):
            out["status"] = res["status"]
            out["metrics"]["Exit code"] = metrics.get("Exit code", 0)
        if "error" in res:
            out["error"] = res["error"]
    if results:
        out["metrics"].setdefault("Exit code", 0)
    return out
