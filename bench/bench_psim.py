"""psim benchmarks: for large ring, 2D mesh and random graphs, print load
time, cold and warm compile time, deliveries per second, peak memory and
bytes per device; and the time a new instance of a cached graph type takes
to reach its first event.

    make bench                      # or: .venv/bin/python bench/bench_psim.py [--small]
    .venv/bin/python bench/bench_psim.py --trace    # the cost of event traces

Each measurement runs in a fresh process, so peak memory is its own.
Generated files are kept in bench/out/.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import graphs  # noqa: E402
from fresh import run_json  # noqa: E402



def generate(name: str, kind: str, *args: int) -> Path:
    return graphs.generated(name, lambda f: graphs.write(f, *getattr(graphs, kind)(*args)))


def measure(path: str) -> dict:
    """In this process: load, compile (as the cache stands), run."""
    from psim.compiler import compile_graph
    from psim.engine import Options
    from psim.run import Loaded, drive

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    loaded = Loaded(path)
    engine = loaded.engine(Options())
    engine.start()
    first_event = time.perf_counter() - t0
    t1 = time.perf_counter()
    compile_graph(loaded.instance.graph)            # now certainly cached: the warm path
    warm = time.perf_counter() - t1
    out = drive(engine, lambda *a: None, Options())
    o = engine.outcome()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    n = loaded.instance.n_devices
    states = engine.states()
    received = sum(s["received"] for s in states.values())
    assert received == o.delivered, "deliveries and device counts disagree"
    return {
        "devices": n, "edges": loaded.instance.n_edges,
        "read_s": loaded.read_seconds, "load_s": loaded.load_seconds,
        "items_per_s": (n + loaded.instance.n_edges) / loaded.read_seconds,
        "compile_s": loaded.compile_seconds, "warm_compile_s": warm, "first_event_s": first_event,
        "delivered": o.delivered, "run_s": out.seconds, "deliveries_per_s": o.delivered / out.seconds,
        "peak_rss": peak, "bytes_per_device": (peak - base) / max(n, 1), "status": out.status,
    }


def measure_trace(path: str) -> dict:
    """In this process: the run untraced, traced into a file, and the replay
    of that file: events per second and bytes per event."""
    from psim import trace
    from psim.engine import Options
    from psim.run import Loaded, run_loaded

    plain = run_loaded(Loaded(path), Options())["metrics"]
    with tempfile.TemporaryDirectory() as tmp:
        file = os.path.join(tmp, "run.ptrace")
        traced = run_loaded(Loaded(path, watchers=True), Options(trace=file))["metrics"]
        size = os.path.getsize(file)
        t0 = time.perf_counter()
        trace.replay(file)
        replay_s = time.perf_counter() - t0
    # init, send, sent and recv records (the bench graphs have no idle handlers)
    events = plain["Devices"] + 2 * plain["Sends"] + plain["Delivered messages"]
    return {"events": events, "plain_s": plain["Run time (s)"], "traced_s": traced["Run time (s)"],
            "bytes": size, "replay_s": replay_s}


def child(path: Path, cache: str, mode: str = "--one") -> dict:
    # reads parse here, each time: bench_cache.py measures the instance cache
    return run_json(__file__, [mode, str(path)], {"PSTACK_CACHE": cache, "PSTACK_INSTANCE_CACHE": "0"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--one-trace", help=argparse.SUPPRESS)
    ap.add_argument("--small", action="store_true", help="100k-device graphs instead of 1M")
    ap.add_argument("--trace", action="store_true", help="the cost of event traces (docs/tracing.md) instead")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return
    if args.one_trace:
        print(json.dumps(measure_trace(args.one_trace)))
        return
    if args.trace:
        trace_figures()
        return
    n = 100_000 if args.small else 1_000_000
    side = int(n ** 0.5)
    cases = [("ring", generate(f"ring-{n}", "ring", n)),
             ("mesh", generate(f"mesh-{side}x{side}", "mesh", side, side)),
             ("random", generate(f"random-{n}x4", "random_graph", n, 4))]
    print(f"{'graph':8} {'devices':>9} {'edges':>9} {'read s':>7} {'items/s':>9} {'cold cc s':>9} "
          f"{'warm cc s':>9} {'deliv/s':>9} {'peak MB':>8} {'B/dev':>6}")
    for name, path in cases:
        with tempfile.TemporaryDirectory() as cache:
            cold = child(path, cache)
            warm = child(path, cache)
        print(f"{name:8} {warm['devices']:9d} {warm['edges']:9d} {warm['read_s']:7.2f} "
              f"{warm['items_per_s'] / 1e6:8.2f}M {cold['compile_s']:9.2f} {warm['warm_compile_s']:9.4f} "
              f"{warm['deliveries_per_s'] / 1e6:8.1f}M {warm['peak_rss'] / 2**20:8.0f} {warm['bytes_per_device']:6.0f}")
    small = generate("mesh-100x100", "mesh", 100, 100)
    with tempfile.TemporaryDirectory() as cache:
        child(small, cache)
        again = child(small, cache)
    print(f"\nnew instance of a cached graph type, {again['devices']} devices: first event after "
          f"{again['first_event_s'] * 1000:.0f} ms (in-process: read, cached module, engine, OnInit)")


def trace_figures() -> None:
    """Tracing a 100k-device ring and mesh (10 messages per device): events
    per second untraced, traced into a file, replayed; bytes per event."""
    cases = [("ring", generate("ring-100000", "ring", 100_000)), ("mesh", generate("mesh-316x316", "mesh", 316, 316))]
    print(f"{'graph':6} {'events':>9} {'plain ev/s':>11} {'traced ev/s':>12} {'replay ev/s':>12} {'B/event':>8} "
          f"{'trace MB':>9}")
    for name, path in cases:
        with tempfile.TemporaryDirectory() as cache:
            f = child(path, cache, "--one-trace")
        ev = f["events"]
        print(f"{name:6} {ev:9d} {ev / f['plain_s'] / 1e6:10.1f}M {ev / f['traced_s'] / 1e6:11.1f}M "
              f"{ev / f['replay_s'] / 1e6:11.1f}M {f['bytes'] / ev:8.1f} {f['bytes'] / 2**20:9.1f}")


if __name__ == "__main__":
    main()
