"""psim --threads: deliveries per second in 1 and 2 threads (or --threads
1 2 4 ...), and the speedup over one, for the 1M-device 2D mesh of
bench/graphs.py and the message-driven heat grid of bench/heat.py (real
handlers, neighbours wait for each other every round).

    .venv/bin/python bench/bench_threads.py            # mesh 1000x1000, heat 1000x1000
    .venv/bin/python bench/bench_threads.py --small    # 300x300, more rounds

Each run is a fresh process (load, then the run); the figure is
deliveries / the run's "Run time (s)" (start to the end of the termination
protocol, the slowest thread's), the best of --repeat runs, taken in turn
for each thread count.  "whole call" adds what a run does around it: the
METIS split, the regions' edge flags, the result's states.  The machine's
load average is printed: other work on the cores takes them from the threads.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import graphs  # noqa: E402
import heat  # noqa: E402



def apps(small: bool) -> dict[str, Path]:
    side, mesh_rounds, heat_rounds = (300, 200, 100) if small else (1000, 10, 20)
    return {
        f"mesh {side}x{side} r{mesh_rounds}": graphs.generated(
            f"threads_mesh_{side}_{mesh_rounds}", lambda f: graphs.write(f, *graphs.mesh(side, side), rounds=mesh_rounds)),
        f"heat {side}x{side} r{heat_rounds}": graphs.generated(
            f"threads_heat_{side}_{heat_rounds}", lambda f: heat.write(f, side, side, heat_rounds)),
    }


def measure(path: str, threads: int) -> dict:
    """In this process: load, then run in `threads` threads."""
    from psim.engine import Options
    from psim.run import Loaded, run_loaded
    loaded = Loaded(path)
    t0 = time.perf_counter()
    res = run_loaded(loaded, Options(threads=threads), on_log=lambda *a: None)
    m = res["metrics"]
    return {"status": res["status"], "delivered": m["Delivered messages"], "seconds": m["Run time (s)"],
            "remote": m.get("Remote messages sent", 0), "total": time.perf_counter() - t0}


def run(path: Path, threads: int) -> dict:
    code = f"import json, bench_threads; print(json.dumps(bench_threads.measure({str(path)!r}, {threads})))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small", action="store_true", help="300x300 grids with more rounds (quicker)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    p.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is kept (default 3)")
    args = p.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    for name, path in apps(args.small).items():
        runs: dict[int, list[dict]] = {n: [] for n in args.threads}
        for _ in range(args.repeat):             # interleaved, so a burst of other work hits every count alike
            for n in args.threads:
                runs[n].append(run(path, n))
        base = None
        for n in args.threads:
            best = min(runs[n], key=lambda r: r["seconds"])
            rate = best["delivered"] / best["seconds"]
            base = base or rate
            print(f"{name:22s} threads={n}: {best['delivered']:>11,} deliveries in {best['seconds']:.3f} s = "
                  f"{rate / 1e6:7.1f} M/s  speedup {rate / base:.2f}x  (whole call {best['total']:.2f} s, "
                  f"{best['remote']:,} records between threads, {best['status']})", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
