"""Loading benchmark: devices+edges read per second, with and without values,
and peak memory, for a w x w mesh (4-neighbour: w^2 devices, ~4 w^2 edges):
    bare      bench/graphs.py mesh: no values
    heat v3   every device with <P> and <S> children, every edge a <P> (JSON)
    heat v4   the same as P/S attributes (C initialiser lists)

    .venv/bin/python bench/bench_load.py              # w = 1000: 1M devices, 4M edges
    .venv/bin/python bench/bench_load.py --size 200 --reference   # and the old Python reader

items/s is by the wall clock; /cpu s per CPU second of the process (both
threads: libxml2's and the loader's), steadier on a busy machine.  Each
reading runs in a fresh process, so its peak RSS is its own (the
process's baseline, Python and its imports, is printed apart).  Generated
files are kept in bench/out/.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import graphs  # noqa: E402



def measure(path: str, reference: bool) -> dict:
    """In this process: pass 1 and pass 2 of reading, timed."""
    from psim import build
    from psim.reader import Source, read_graph_type, read_instance
    from psim.reader_reference import read_instance_reference

    loader = build.loader_module()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0, c0 = time.perf_counter(), cpu()
    src = Source(path)
    graph, ns = read_graph_type(src)
    inst = (read_instance_reference if reference else read_instance)(src, graph, ns, loader.lib, loader.ffi)
    seconds, cpu_seconds = time.perf_counter() - t0, cpu() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    arrays = sum(len(a) for a in inst.props + inst.state + inst.eprops + inst.estate)
    return dict(items=inst.n_devices + inst.n_edges, seconds=seconds, cpu=cpu_seconds, base=base, peak=peak,
                arrays=arrays)


def cpu() -> float:
    """CPU seconds of this process, all threads: on a busy machine a steadier
    figure than the wall clock (which waits for a core)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(path: Path, reference: bool) -> dict:
    done = subprocess.run([sys.executable, __file__, "--measure", str(path)] + (["--reference"] if reference else []),
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1000, help="mesh width and height")
    ap.add_argument("--reference", action="store_true", help="also time the reference (Python) reader")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.reference)))
        return
    w = args.size
    files = {
        "bare": graphs.generated(f"mesh_{w}", lambda f: graphs.write(f, *graphs.mesh(w, w))),
        "heat v3": graphs.generated(f"heat_{w}_v3", lambda f: graphs.write_heat(f, w, w, 3)),
        "heat v4": graphs.generated(f"heat_{w}_v4", lambda f: graphs.write_heat(f, w, w, 4)),
    }
    print(f"{'file':10} {'reader':7} {'MB':>5} {'items':>9} {'s':>6} {'items/s':>8} {'cpu s':>6} {'/cpu s':>7} "
          f"{'peak RSS':>9} {'over base':>9} {'arrays':>7}")
    for name, path in files.items():
        for reference in ([False, True] if args.reference else [False]):
            r = run(path, reference)
            print(f"{name:10} {'python' if reference else 'C':7} {path.stat().st_size / 1e6:5.0f} {r['items']:9d} "
                  f"{r['seconds']:6.2f} {r['items'] / r['seconds'] / 1e6:7.2f}M {r['cpu']:6.2f} "
                  f"{r['items'] / r['cpu'] / 1e6:6.2f}M {r['peak'] / 2**20:8.0f}M "
                  f"{(r['peak'] - r['base']) / 2**20:8.0f}M {r['arrays'] / 2**20:6.0f}M", flush=True)


if __name__ == "__main__":
    main()
