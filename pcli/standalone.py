"""psim standalone with an application engine: psim's C engine and a
pcli.Engine in one process, without Redis or sockets
(`psim(xml, externals=engine)`, `psim --external module:factory`; and
`supervisor=engine`, `--supervisor`, for a supervisor in Python).

Region 0 holds the C devices and runs the compiled engine in the calling
thread (it hosts the termination coordinator); region 1 holds the external
devices (or the supervisor), served by the engine in a thread of its own
(cffi releases the GIL while the C engine runs).  Both run pd/region.py's RegionRun over
broker/localplane.py, so the protocol is the one of a process split across
hosts.  One C region only: a compiled module keeps process-wide statics.

psim imports this module only when it is given an engine: psim is the layer
below pcli, and `import psim` must not bring in pcli, pd or ZeroMQ.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Callable

from broker.localplane import LocalPlane, local_planes
from pd.region import RegionRun
from psim.engine import SUPERVISOR, Engine as CEngine, Options
from psim.errors import BadInput
from psim.run import Loaded, LogSink, load_instance, result

from .api import bind_externals, merge
from .engine import Engine

C_REGION, ENGINE_REGION = 0, 1


def run_with_engine(loaded: Loaded, externals: Engine | None, opts: Options, rmap: dict | None = None,
                    on_log: LogSink | None = None, supervisor: Engine | None = None) -> dict:
    """Run `loaded` with its external devices served by `externals`, or its
    supervisor run by `supervisor` (an application has one or the other):
    psim's result, the two regions merged as pcli.result merges a
    process's.  Log lines go to on_log, or without one into the result."""
    if rmap or opts.region is not None:
        raise BadInput("with an application engine, psim runs the other devices in one region: "
                       "give no region map or region")
    if (externals is None) == (supervisor is None):
        raise BadInput("give one application engine: for the externals or for the supervisor")
    places: dict = {}
    if supervisor is not None:
        engine, sup_place = supervisor, {SUPERVISOR: ENGINE_REGION}
        if loaded.instance.graph.supervisor is None:
            raise BadInput("an engine for the supervisor was given, but the application has no supervisor",
                           loaded.instance.source.name)
    else:
        engine, sup_place = externals, {}
        bind_externals(loaded.instance, engine, ENGINE_REGION, places, None)
    regions = loaded.region_array(places)
    c_engine = loaded.engine(opts, sup_place, regions=regions, n_regions=2)
    mine = load_instance(loaded.instance.source)      # the engine's own: edges are indexed per region
    c_plane, engine_plane = local_planes(2)
    ends = Ends()
    with ThreadPoolExecutor(1, thread_name_prefix="psim-application-engine") as pool:
        served = pool.submit(ends.after, ENGINE_REGION, engine.serve, mine, regions, ENGINE_REGION, engine_plane,
                             opts.timeout, on_log, None, ends.watch(ENGINE_REGION), c_engine.sup_region)
        c_result = ends.after(C_REGION, _run_c_region, loaded, c_engine, c_plane, opts, on_log,
                              ends.watch(C_REGION))
        return ends.merged({C_REGION: c_result, ENGINE_REGION: served.result()})


def _run_c_region(loaded: Loaded, engine: CEngine, plane: LocalPlane, opts: Options, on_log: LogSink | None,
                  watch: Callable[[], str | None]) -> dict:
    log: list = []
    out = RegionRun(engine, plane, on_log or (lambda d, lv, t: log.append((d, lv, t))), opts.timeout,
                    watch=watch).run()
    return result(loaded, engine, out, log)


class Ends:
    """The order in which the regions ended.  A region still running when
    another has ended without a STOP (it failed) ends too, as the daemons
    stop the other regions in the cluster; and the first region to end, if
    it failed, gives the run its reason, as the first failure recorded is a
    process's reason."""

    def __init__(self):
        self.order: list[int] = []

    def after(self, region: int, fn: Callable, *args):
        """fn(*args), then `region` has ended (however fn ends)."""
        try:
            return fn(*args)
        finally:
            self.order.append(region)        # list.append is atomic: no lock between the two threads

    def watch(self, region: int) -> Callable[[], str | None]:
        """RegionRun's watch for `region`: the reason to end, once another region has."""
        return lambda: next((f"region {q} ended" for q in self.order if q != region), None)

    def merged(self, results: dict[int, dict]) -> dict:
        out = merge(results)
        first = results[self.order[0]]
        if first["status"] == "failed":      # the others were stopped by its end: theirs is not the reason
            out["error"], out["metrics"]["Exit code"] = first["error"], first["metrics"]["Exit code"]
        return out


def engine_from_spec(spec: str, option: str = "--external") -> Engine:
    """The engine `psim --external module:factory` (or --supervisor) names: factory(), or the
    attribute itself when it is an Engine; the module imported from the
    working directory and sys.path, or a file (path/to/mod.py:factory).
    BadInput, naming the spec, when there is no such engine."""
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise BadInput(f"{option} {spec}: expected module:factory (or path/to/module.py:factory)")
    module = _module(where, spec, option)
    if not hasattr(module, name):
        raise BadInput(f"{option} {spec}: module '{where}' has no attribute '{name}'")
    thing, what = getattr(module, name), f"{name} is"
    if callable(thing):
        try:
            thing, what = thing(), f"{name}() returned"
        except Exception as e:               # the user's code: any exception is theirs to see
            raise BadInput(f"{option} {spec}: {name}() raised {_last_line(e)}") from None
    if not isinstance(thing, Engine):
        raise BadInput(f"{option} {spec}: {what} a value of type {type(thing).__name__}, not a pcli.Engine")
    return thing


def _module(where: str, spec: str, option: str) -> ModuleType:
    path = Path(where)
    is_file = where.endswith(".py") or os.sep in where
    if is_file and not path.is_file():
        raise BadInput(f"{option} {spec}: no file {where}")
    if not is_file and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())      # an installed `psim` script's sys.path lacks the working directory
    try:
        return _from_file(path) if is_file else importlib.import_module(where)
    except Exception as e:                   # the module's own code may raise anything
        missing = isinstance(e, ModuleNotFoundError) and not is_file and e.name and \
            (where == e.name or where.startswith(e.name + "."))
        detail = f"no module named '{e.name}'" if missing else f"importing '{where}' raised {_last_line(e)}"
        raise BadInput(f"{option} {spec}: {detail}") from None


def _from_file(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _last_line(e: BaseException) -> str:
    return traceback.format_exception_only(e)[-1].strip()
