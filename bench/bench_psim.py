"""psim benchmarks: for large ring, 2D mesh and random graphs, print load
time, cold and warm compile time, deliveries per second, peak memory and
bytes per device; and the time a new instance of a cached graph type takes
to reach its first event.

    make bench                      # or: .venv/bin/python bench/bench_psim.py [--small]

Each measurement runs in a fresh process, so peak memory is its own.
Generated files are kept in bench/out/.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import graphs  # noqa: E402

OUT = HERE / "out"


def generate(name: str, kind: str, *args: int) -> Path:
    path = OUT / f"{name}.xml"
    if not path.exists():
        OUT.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            graphs.write(f, *getattr(graphs, kind)(*args))
        tmp.rename(path)
    return path


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


def child(path: Path, cache: str) -> dict:
    env = dict(os.environ, PSTACK_CACHE=cache)
    done = subprocess.run([sys.executable, __file__, "--one", str(path)], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--small", action="store_true", help="100k-device graphs instead of 1M")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
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


if __name__ == "__main__":
    main()
