"""Running an application standalone: load, compile, drive the engine to the
end (handler_exit, idle, or failure), and shape the result."""
from __future__ import annotations

import time
from array import array
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

from . import build, instcache, limits, trace
from .compiler import compile_graph
from .engine import BUDGET, IDLE, STOP_EXIT, STOP_FAIL, STOPPED, SUPERVISOR, Engine, Options
from .errors import BadInput
from .progress import QUIET, Phase, Quiet, counted
from .reader import Instance, Source, read_graph_type, unserved_externals

BATCH = 1 << 20            # most events per call into C
SLICE = 0.1                # seconds a call into C should last: how long Ctrl-C may wait (Slices)
FIRST_SLICE = 1 << 12      # events in the first call, before the rate is known
INTERRUPTED = 130          # the exit code of a run stopped by Ctrl-C (the shell's for SIGINT)
IDLE_ROUNDS = 10           # hardware-idle rounds without a send before the run ends (as the reference)

LogSink = Callable[[str, int, str], None]
BatchHook = Callable[[Engine], None]       # runs after every batch of events (drive's on_batch)
InstanceReader = Callable[[Source, object, str, object, object], "tuple[Instance, bool]"]   # (src, graph, ns, lib, ffi)


class Loaded:
    """An application read and compiled, ready to run (possibly many times)."""

    def __init__(self, xml: str | Path, watchers: bool = False, read: InstanceReader | None = None,
                 progress: Quiet = QUIET):
        """watchers: compiled so that a debugger or a trace can watch it.
        read: where the instance comes from (default: the instance cache,
        else pass 2 of the XML); (instance, came from a cache).  progress:
        where the reading and the compiling are shown (psim/progress.py)."""
        t0 = time.perf_counter()
        src = Source(xml)
        graph, ns = read_graph_type(src)
        loader = build.loader_module()
        pool = ThreadPoolExecutor(1)             # g++ runs while Python reads the instance
        try:
            compiling = pool.submit(_compile, graph, watchers, progress.phase("compiling handlers"))
            try:
                t1 = time.perf_counter()
                reading = progress.phase(f"reading {src.name}", src.size)
                self.instance: Instance
                self.instance, self.instance_cached = (read or partial(instcache.read, on_block=reading.block))(
                    src, graph, ns, loader.lib, loader.ffi)
                self.read_seconds = time.perf_counter() - t1
                reading.end(f"{counted(self.instance.n_devices, self.instance.n_edges)}"
                            + (" from the instance cache" if self.instance_cached else ""))
            except Exception:
                compiling.result()               # a handler that does not compile is said first
                raise
            self.module, self.compile_seconds = compiling.result()
        finally:                                 # Ctrl-C: out at once, not after g++ (a terminal's stops g++ too)
            pool.shutdown(wait=False, cancel_futures=True)
        self.load_seconds = time.perf_counter() - t0
        self.used = False

    def region_array(self, rmap: dict) -> array:
        """Region of every device from {device id: region}; unmapped devices are in region 0."""
        return region_array(self.instance, rmap)

    def take(self) -> None:
        """Claim the instance's arrays for this load's engines (one run per load)."""
        if self.used:
            raise RuntimeError("Loaded.engine() gives one engine per load; load again for another")
        self.used = True

    def engine(self, opts: Options, rmap: dict | None = None, regions: array | None = None,
               n_regions: int | None = None) -> Engine:
        """The engine for this instance, or for region opts.region of it when
        a region map is given (`rmap` by device id, or `regions`, one entry
        per device).  Only one: it runs on the instance's own arrays."""
        self.take()
        if regions is None and not rmap and opts.region is None:
            unserved_externals(self.instance, lambda dev: True)
            return Engine(self.module, self.instance, opts)
        rmap = dict(rmap or {})
        sup_region = supervisor_region(self.instance, rmap)
        if regions is None:
            regions = self.region_array(rmap)
        elif len(regions) != self.instance.n_devices:
            raise BadInput(f"region map has {len(regions)} entries for {self.instance.n_devices} devices")
        mine = opts.region or 0
        n = max(n_regions or 0, max(regions, default=0) + 1, mine + 1, sup_region + 1)
        unserved_externals(self.instance, lambda dev: regions[dev] == mine)
        return Engine(self.module, self.instance, opts, regions, mine, n, sup_region)


def supervisor_region(inst: Instance, rmap: dict) -> int:
    """The region that runs the supervisor: rmap's SUPERVISOR entry (taken
    out of it), else region 0."""
    if SUPERVISOR not in rmap:
        return 0
    region = rmap.pop(SUPERVISOR)
    if inst.graph.supervisor is None:
        raise BadInput(f"region map places '{SUPERVISOR}', but the application has no supervisor",
                       inst.source.name)
    if not isinstance(region, int) or isinstance(region, bool) or not 0 <= region < 0xFFFF:
        raise BadInput(f"region map: the supervisor's region must be an integer from 0 to 65534, not {region!r}",
                       inst.source.name)
    return region


def region_array(inst: Instance, rmap: dict) -> array:
    """Region of every device of `inst` from {device id: region}; unmapped
    devices are in region 0."""
    region = array("H", bytes(2 * inst.n_devices))
    if not rmap:
        return region
    loader = build.loader_module()
    lib, ffi = loader.lib, loader.ffi
    ids = [str(d) for d in rmap]
    try:
        regions = array("H", (int(r) for r in rmap.values()))
    except (ValueError, OverflowError, TypeError):
        raise BadInput("region map: regions must be integers from 0 to 65534", inst.source.name) from None
    blob = "\n".join(ids).encode()
    index = array("I", bytes(4 * len(ids)))
    missing = lib.pl_find_many(inst.loader, blob, len(blob), len(ids), ffi.from_buffer("uint32_t[]", index))
    if missing >= 0:
        raise BadInput(f"region map names missing device '{ids[missing]}'", inst.source.name)
    for i, r in zip(index, regions):
        region[i] = r
    return region


def load_instance(xml: str | Path | Source) -> Instance:
    """An application's instance, read without compiling its handlers (for
    engines that do not run them, e.g. a Python region)."""
    src = xml if isinstance(xml, Source) else Source(xml)
    graph, ns = read_graph_type(src)
    loader = build.loader_module()
    return instcache.read(src, graph, ns, loader.lib, loader.ffi)[0]


def _compile(graph, watchers: bool, phase: Phase):
    """compile_graph, its phase ended when it is."""
    module, seconds = compile_graph(graph, watchers)
    phase.end("from the build cache" if not seconds else "")
    return module, seconds


class Outcome:
    def __init__(self, status: str, exit_code: int, error: str | None, hw_rounds: int, seconds: float,
                 kind: int = 0):
        self.status, self.exit_code, self.error = status, exit_code, error
        self.hw_rounds, self.seconds = hw_rounds, seconds
        self.kind = kind               # the engine's fail kind (engine.FAIL_*), 0 when it did not fail


class IdleRounds:
    """The reference's rule for hardware idle: OnHardwareIdle rounds go on
    until IDLE_ROUNDS of them in a row started no send."""

    def __init__(self):
        self.rounds = self.quiet = 0
        self.sends_at_round: int | None = None

    def next_round(self, sends: int) -> bool:
        """At hardware idle, `sends` so far: True to run another round."""
        self.quiet = self.quiet + 1 if sends == self.sends_at_round else 0
        if self.quiet >= IDLE_ROUNDS:
            return False
        self.sends_at_round = sends
        self.rounds += 1
        return True


def idle_rounds(graph) -> bool:
    """Does the run go through hardware-idle rounds at quiescence?  With
    OnHardwareIdle handlers, or a supervisor: its OnSupervisorIdle ticks
    once per round, idle rounds too, so those run the reference's idle
    rounds as well."""
    return graph.supervisor is not None or any(d.on_hardware_idle is not None for d in graph.devices.values())


def drive(engine: Engine, on_log: LogSink, opts: Options, on_batch: BatchHook | None = None) -> Outcome:
    """Run to the end.  Hardware idle: when nothing is ready or in flight,
    OnHardwareIdle runs everywhere, by the IdleRounds rule, when the app
    has idle rounds (idle_rounds); else it ends at the first idle.
    on_batch(engine) runs after every batch of events (progress; several
    hooks: each()).  Ctrl-C (KeyboardInterrupt) is seen within about a
    slice (Slices) and raised as Interrupted, with the outcome so far: the
    engine is as it was after its last batch."""
    t0 = time.perf_counter()
    deadline = t0 + opts.timeout if opts.timeout else None
    has_hwidle = idle_rounds(engine.inst.graph)
    idle = IdleRounds()
    slices = Slices()

    def remaining() -> float:
        return max(deadline - time.perf_counter(), 1e-6) if deadline else 0.0

    try:
        status = engine.start(remaining())
        while status != STOPPED:
            drain_logs(engine, on_log)
            if deadline and time.perf_counter() >= deadline:
                status = engine.run(1, 1e-6)       # the engine records the timeout
                continue
            status = slices.run(engine, remaining())
            if on_batch:
                on_batch(engine)
            if status != IDLE:
                continue
            if not has_hwidle or not idle.next_round(engine.outcome().sends):
                engine.finish(remaining())
                break
            status = engine.hardware_idle(remaining())
        drain_logs(engine, on_log)
    except KeyboardInterrupt:
        raise Interrupted(Outcome("interrupted", INTERRUPTED, None, idle.rounds, time.perf_counter() - t0)) from None
    seconds = time.perf_counter() - t0
    o = engine.outcome()
    if o.stop == STOP_EXIT:
        return Outcome("exit", o.exit_code, None, idle.rounds, seconds)
    return failed(engine, idle.rounds, seconds) or Outcome("idle", 0, None, idle.rounds, seconds)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during drive(): still a KeyboardInterrupt to callers that do
    not look for it (a cluster's worker); run_loaded makes a result of its
    outcome."""

    def __init__(self, outcome: Outcome):
        super().__init__()
        self.outcome = outcome


def each(hooks: Sequence[BatchHook]) -> BatchHook:
    """One on_batch hook that runs `hooks` in order."""
    def run_each(engine: Engine) -> None:
        for hook in hooks:
            hook(engine)
    return run_each


class Slices:
    """Events per call into C, sized so that a call lasts about SLICE
    seconds at the rate the last full call ran, at most `most`.  A call
    cannot be interrupted (Ctrl-C is seen when it returns), and a slow
    handler (1 ms) makes BATCH events minutes long, while a fast one runs
    BATCH in tens of milliseconds (bench/graphs.py's mesh: 60M events/s)."""

    def __init__(self, most: int = BATCH):
        self.most = most
        self.size = min(FIRST_SLICE, most)

    def ran(self, took: float, full: bool) -> None:
        """A call took `took` seconds; `full`: it ran all the events it was given."""
        if full or took > SLICE:
            self.size = max(1, min(self.most, 4 * self.size, int(self.size * SLICE / max(took, 1e-6))))

    def run(self, engine: Engine, seconds: float) -> int:
        """engine.run for one slice (`seconds`: the run's time left, 0: no limit); its status."""
        t0 = time.perf_counter()
        status = engine.run(self.size, seconds)
        self.ran(time.perf_counter() - t0, status == BUDGET)
        return status


def failed(engine: Engine, rounds: int, seconds: float) -> Outcome | None:
    """The outcome of an engine that failed (assert, crash, timeout...), else None."""
    o = engine.outcome()
    if o.stop != STOP_FAIL:
        return None
    return Outcome("failed", o.exit_code or 1, engine.failure(o), rounds, seconds, o.fail_kind)


def drain_logs(engine: Engine, on_log: LogSink) -> None:
    """The log lines written since the last call, to on_log; and the
    trace's records, when it is traced (psim/trace.py)."""
    for dev, level, text in engine.logs():
        on_log(dev, level, text)
    engine.drain_trace()


def result(loaded: Loaded, engine: Engine, out: Outcome, log: list | None, states: dict | None = None,
           progress: Quiet = QUIET) -> dict:
    """The run's result dict; `states` instead of the engine's own local ones."""
    o = engine.outcome()
    inst = loaded.instance
    metrics = {
        "Delivered messages": o.delivered,
        "Sends": o.sends,
        "Cancelled sends": o.cancelled,
        "Device idle calls": o.devidle_calls,
        "Hardware idle rounds": out.hw_rounds,
        "Steps": o.steps,
        "Exit code": out.exit_code,
        "Devices": inst.n_devices,
        "Edges": inst.n_edges,
        "Load time (s)": round(loaded.load_seconds, 4),
        "Compile time (s)": round(loaded.compile_seconds, 4),
        "Run time (s)": round(out.seconds, 4),
    }
    if engine.region is not None:
        metrics.update({"Region": engine.my_region, "Remote messages sent": o.remote_sent,
                        "Remote messages received": o.remote_received, "Remote bytes": o.remote_bytes})
    if states is None:
        with progress.during("decoding states"):
            states = engine.states()
    res = {"states": states, "metrics": metrics, "status": out.status}
    if log is not None:
        res["log"] = [list(entry) for entry in log]
    if out.error:
        res["error"] = out.error
    return res


def psim(xml: str | Path, rmap: dict | None = None, options: dict | None = None, externals=None,
         supervisor=None) -> dict:
    """Run a POETS application and return its result:
    {"states": {device: {field: value}}, "metrics": {...}, "log": [...],
     "status": "exit" | "idle" | "failed" | "interrupted", "error": "..." (when failed)}.
    externals: an application engine (a pcli.Engine) serving the external
    devices, here in this process (docs/engines.md); the result then merges
    its region's with the C devices' as pcli.result does.  supervisor: an
    application engine that runs the supervisor instead of its C code.
    Raises BadInput for a bad application file.  With the memory_mb option
    the calling process is limited while the run lasts (psim/limits.py)."""
    opts = Options.from_dict(options)
    with limits.memory_limited(opts.memory_mb):
        return run_loaded(Loaded(xml, watchers=bool(opts.trace)), opts, rmap, externals, supervisor=supervisor)


def run_loaded(loaded: Loaded, opts: Options, rmap: dict | None = None, externals=None,
               on_log: LogSink | None = None, supervisor=None, states: bool = True,
               progress: Quiet = QUIET, on_batch: Sequence[BatchHook] = ()) -> dict:
    """Run a loaded application to its result (psim() and the psim command);
    log lines go to on_log, or without one into the result.  states=False:
    the result's states are left empty by a plain run, not decoded (psim -q
    prints none, and decoding a million is seconds).  progress shows the
    run; on_batch: more hooks after every batch (drive), in every thread
    with --threads.  Ctrl-C ends the run "interrupted", with the states
    and metrics it had then (not with an application engine)."""
    if externals is not None or supervisor is not None:
        if opts.threads > 1:
            raise BadInput("--threads runs psim's own engines: not with an application engine")
        if opts.trace:
            raise BadInput("a run with an application engine cannot be traced: a replay needs every region's "
                           "trace, and an engine's Python region records none")
        from pcli.standalone import run_with_engine      # the layer above psim: imported only for an engine
        return run_with_engine(loaded, externals, opts, rmap, on_log, supervisor)
    if opts.threads > 1:
        from .threads import run_threads                # brings in the region protocol: only when asked
        return run_threads(loaded, opts, rmap, on_log, progress, on_batch)
    engine = loaded.engine(opts, rmap)
    sink = _trace_sink(loaded, engine, opts)
    log: list = []
    running = progress.running()
    try:
        out = drive(engine, on_log or (lambda d, lv, t: log.append((d, lv, t))), opts, each([running, *on_batch]))
    except Interrupted as e:
        out = e.outcome
    running.end(out.status)
    if sink:
        if out.status != "interrupted":          # an interrupted trace has no end: replayed as far as it goes
            sink(trace.end_chunk(engine, out.status, out.exit_code, out.error))
        sink.close()
    return result(loaded, engine, out, log, None if states else {}, progress)


def _trace_sink(loaded: Loaded, engine: Engine, opts: Options) -> "trace.FileSink | None":
    """The trace file opts.trace names, recording `engine`; None without one."""
    if not opts.trace:
        return None
    if opts.trace is True:
        raise BadInput("trace=True keeps a process's trace on a cluster; give psim a file name")
    sink = trace.FileSink(opts.trace)
    sink(trace.head_chunks(loaded.instance, engine, opts))
    trace.record(engine, sink)
    return sink
