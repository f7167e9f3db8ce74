"""Whole-process figures for applications that look like real ones
(bench/realapps.py): the psim command run as a user runs it, in a fresh
process each time, after one run that fills the compile cache.

    .venv/bin/python bench/bench_apps.py [--repeat N] [--psim-args "--threads 2"]

Prints, per app: devices and edges, the whole process's wall time, psim's
own load time (reading the file: items/s) and run time (deliveries/s),
and peak memory.  Best of N.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import graphs  # noqa: E402
import realapps  # noqa: E402

PSIM = Path(sys.executable).parent / "psim"
APPS = [("heat", 200, 200, 50), ("ising", 250, 250, 100)]     # the heat mesh; Ising of 63k devices


def generate(app: str, w: int, h: int, rounds: int) -> Path:
    return graphs.generated(f"{app}-{w}x{h}-r{rounds}", lambda f: realapps.write(f, app, w, h, rounds))


def run_once(path: Path, extra: list[str]) -> dict:
    """One psim -q run in a fresh process: wall time, its metrics, peak RSS."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(PSIM), str(path), "-q", *extra], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"psim {path.name} failed (status {status}):\n{out}")
    metrics = {}
    for line in out.splitlines():
        if line.startswith("Metric "):
            name, _, value = line[len("Metric "):].rpartition(": ")
            metrics[name] = float(value)
    return {"wall": wall, "metrics": metrics, "rss_mb": usage.ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--psim-args", default="", help="more psim arguments, e.g. '--threads 2'")
    args = ap.parse_args(argv)
    extra = shlex.split(args.psim_args)
    print("| app | devices | edges | whole process s | load s | load items/s | run s | deliveries/s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for app, w, h, rounds in APPS:
        path = generate(app, w, h, rounds)
        run_once(path, extra)                     # fills the compile cache (and any instance cache)
        best = min((run_once(path, extra) for _ in range(args.repeat)), key=lambda r: r["wall"])
        m = best["metrics"]
        items = m["Devices"] + m["Edges"]
        print(f"| {app} {w}x{h}, {rounds} rounds | {m['Devices']:,.0f} | {m['Edges']:,.0f} | {best['wall']:.3f} "
              f"| {m['Load time (s)']:.3f} | {items / m['Load time (s)'] / 1e6:.2f} M | {m['Run time (s)']:.3f} "
              f"| {m['Delivered messages'] / m['Run time (s)'] / 1e6:.1f} M | {best['rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
