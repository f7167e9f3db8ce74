"""What the debugger costs a run (docs/performance.md): the run phase of
the 1000x1000 mesh (4M edges, 100 rounds: 400M deliveries) with

  off        the module every run that is not debugged or traced gets (no watchers in it)
  built      the module a debugger or a trace needs, nothing attached
  attached   under the debugger, no breakpoint: cont() to the end
  armed      under the debugger, a breakpoint on one device whose condition never holds

    .venv/bin/python bench/bench_debugger.py [--small] [--repeat 3]

Each figure is the best of --repeat runs, each in a fresh process.
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
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import graphs  # noqa: E402
from bench_dataplane import generate  # noqa: E402

ROUNDS = 100

MODES = ("off", "built", "attached", "armed")


def measure(path: str, mode: str) -> dict:
    """In this process: the run phase of `path` in `mode` (seconds, deliveries)."""
    from psim.engine import Options
    from psim.run import Loaded, drive
    loaded = Loaded(path, watchers=mode != "off")
    if mode in ("off", "built"):
        engine = loaded.engine(Options())
        t0 = time.perf_counter()
        drive(engine, lambda *a: None, Options())
        return {"seconds": time.perf_counter() - t0, "delivered": engine.outcome().delivered}
    from pcli.debugger import local
    s = local(loaded=loaded, on_log=lambda *a: None)
    if mode == "armed":
        s.break_on(device="n0", when="received < 0")     # matched in C for one device, never holds
    t0 = time.perf_counter()
    stop = s.cont()
    seconds = time.perf_counter() - t0
    assert stop.reason == "end", stop
    return {"seconds": seconds, "delivered": s.result()["metrics"]["Delivered messages"]}


def child(path: Path, mode: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--one", str(path), mode], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--small", action="store_true", help="a 300x300 mesh instead of 1000x1000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--modes", default=",".join(MODES), help=f"some of {','.join(MODES)} (off first)")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one)))
        return
    side = 300 if args.small else 1000
    path = generate(f"mesh-{side}x{side}-r{ROUNDS}", graphs.mesh(side, side), ROUNDS)
    modes = args.modes.split(",")
    best = {}
    for mode in modes:
        runs = [child(path, mode) for _ in range(args.repeat)]
        best[mode] = min(runs, key=lambda r: r["seconds"])
    base = best[modes[0]]["seconds"]
    print(f"{side}x{side} mesh, run phase, best of {args.repeat} ({os.cpu_count()} cores)")
    print(f"{'mode':10} {'run s':>8} {'deliv/s':>10} {'vs ' + modes[0]:>12}")
    for mode in modes:
        r = best[mode]
        print(f"{mode:10} {r['seconds']:8.3f} {r['delivered'] / r['seconds'] / 1e6:9.1f}M "
              f"{(r['seconds'] / base - 1) * 100:+11.1f}%")


if __name__ == "__main__":
    main()
