"""What a user waits for, through the real commands (`pcli -c`, `psim`) on a
local cluster (pstack-cluster: two pd of 2 slots, in a temporary folder):

- `pcli --version` and `pcli -c ps`: start-up;
- `pcli -c engines` with nothing listening at the URL: time to fail;
- `pcli -c "run --async --regions 2 BIG"`: time until the pid is printed,
  and until the whole command returns (partitioned and uploaded);
- `pcli -c "result PID"` (the summary), `--states` and `--json` of that
  process: seconds and bytes printed;
- psim on BIG with and without its progress display (--progress into a
  pipe): run time.

    .venv/bin/python bench/bench_user.py [SIDE]      # BIG: a SIDE x SIDE mesh (default 700: 490,000 devices)
"""
from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from graphs import mesh, write

BIN = Path(sys.executable).parent


def timed(*cmd: object, env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=600)
    return time.perf_counter() - t, done


def median(runs: int, *cmd: object, env: dict | None = None) -> float:
    return statistics.median(timed(*cmd, env=env)[0] for _ in range(runs))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def until_pid(app: Path, env: dict) -> tuple[float, float, int]:
    """`pcli -c "run --async --regions 2 APP"`: seconds to its first line
    (the pid), seconds to its exit, the pid."""
    t = time.perf_counter()
    proc = subprocess.Popen([BIN / "pcli", "-c", f"run --async --regions 2 {app}"], stdout=subprocess.PIPE,
                            text=True, env=env)
    pid = int(proc.stdout.readline())
    first = time.perf_counter() - t
    proc.wait(timeout=600)
    whole = time.perf_counter() - t
    subprocess.run([BIN / "pcli", "-c", f"block {pid}"], env=env, capture_output=True, check=True)  # a quiet machine
    return first, whole, pid                                                                    # for the next


def main(side: int) -> None:
    with tempfile.TemporaryDirectory(prefix="pstack-bench-") as folder:
        big = Path(folder) / "mesh.xml"
        with big.open("w") as out:
            write(out, *mesh(side, side), rounds=2)
        cluster = Path(folder) / "c"
        subprocess.run([BIN / "pstack-cluster", "start", cluster, "--pds", "2", "--slots", "2"], check=True,
                       capture_output=True)
        try:
            added = subprocess.run([BIN / "pstack-cluster", "adduser", cluster, "bench"], check=True,
                                   capture_output=True, text=True).stdout
            env = {**os.environ, "PSTACK_REDIS": added.splitlines()[-1].split("=", 1)[1]}
            print(f"pcli --version: {median(5, BIN / 'pcli', '--version', env=env) * 1000:.0f} ms (median of 5)")
            print(f"pcli -c ps: {median(5, BIN / 'pcli', '-c', 'ps', env=env) * 1000:.0f} ms (median of 5)")
            down = {**env, "PSTACK_REDIS": f"redis://127.0.0.1:{free_port()}/0"}
            print(f"pcli -c engines, nothing at the URL: fails in {median(3, BIN / 'pcli', '-c', 'engines', env=down):.2f} s")
            first, whole, pid = until_pid(big, env)          # cold: partitions and makes the instance form
            print(f"run --async --regions 2 of {side * side:,} devices, cold: pid after {first:.2f} s, "
                  f"returns after {whole:.2f} s")
            for _ in range(3):
                first, whole, pid = until_pid(big, env)
                print(f"the same, warm (partition cached): pid after {first:.2f} s, returns after {whole:.2f} s")
            for flags in ("", " --states", " --json"):
                seconds, done = timed(BIN / "pcli", "-c", f"result {pid}{flags}", env=env)
                print(f"result {pid}{flags}: {seconds:.2f} s, {len(done.stdout):,} bytes")
        finally:
            subprocess.run([BIN / "pstack-cluster", "stop", cluster], capture_output=True)
        long = Path(folder) / "mesh50.xml"                   # ~100 M deliveries: a run long enough to show
        with long.open("w") as out:
            write(out, *mesh(side, side), rounds=50)
        for flag in ("--no-progress", "--progress"):
            runs = [float(line.split(": ")[1]) for _ in range(3)
                    for line in timed(BIN / "psim", "-q", flag, long)[1].stdout.splitlines()
                    if line.startswith("Metric Run time")]
            print(f"psim -q {flag} on {side * side:,} devices, 50 rounds: run time {statistics.median(runs):.3f} s "
                  "(median of 3)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 700)
