"""Cluster control-plane figures on a local secured cluster (redis-server,
the scheduler and pd under supervisord, in a temporary folder; a user made
as adduser makes one): a request's round trip through the scheduler,
latency of one small process from
run() to its result (back to back, and 1 s apart: with the spare workers
ready), throughput of many small processes, time from kill()
to the region worker gone, and time to fail a process whose daemon was
SIGKILLed.

    .venv/bin/python bench/bench_cluster.py
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "psim"))

from pd import cluster, identities  # noqa: E402
from tinyapp import endless_app  # noqa: E402

RING = str(ROOT / "tests" / "apps" / "ring_v2.xml")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="pstack-bench-") as folder:
        cluster.start(folder, pds=2, slots=1)
        os.environ["PSTACK_REDIS"] = identities.add_user(Path(folder), "bench", "user")
        import pcli
        try:
            rtt = []
            for _ in range(200):
                t = time.perf_counter()
                try:
                    pcli.kill(10**9)                           # no such process: the scheduler says so
                except ValueError:
                    rtt.append(time.perf_counter() - t)
            print(f"a request's round trip through the scheduler (kill of no process): median "
                  f"{statistics.median(rtt) * 1000:.2f} ms")
            pcli.run(RING)                                     # warm the module cache
            lat = []
            for _ in range(20):
                t = time.perf_counter()
                pcli.run(RING)
                lat.append(time.perf_counter() - t)
            print(f"run() to result, ring (4 devices): median {statistics.median(lat) * 1000:.0f} ms, "
                  f"max {max(lat) * 1000:.0f} ms")
            spaced = []
            for _ in range(15):
                time.sleep(1.0)                                # the daemons' spare workers are ready
                t = time.perf_counter()
                pcli.run(RING)
                spaced.append(time.perf_counter() - t)
            print(f"run() to result, 1 s apart: median {statistics.median(spaced) * 1000:.0f} ms")
            t = time.perf_counter()
            pcli.block([pcli.run(RING, async_=True) for _ in range(50)])
            dt = time.perf_counter() - t
            print(f"50 processes on 2 engines x 1 slot: {dt:.2f} s, {50 / dt:.1f} processes/s")
            f = pcli.run(endless_app("benchkill"), async_=True)
            while pcli.info(f.pid)["state"] != "running":
                time.sleep(0.01)
            time.sleep(0.5)
            t = time.perf_counter()
            pcli.kill(f.pid)
            pcli.block(f)
            print(f"kill() to the process recorded killed: {(time.perf_counter() - t) * 1000:.0f} ms")
        finally:
            cluster.stop(folder)


if __name__ == "__main__":
    main()
