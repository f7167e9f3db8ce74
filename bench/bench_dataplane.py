"""Data-plane figures on a local cluster (redis-server and two pd with one
slot each, so each region has a core):

1. records per second over one link: 2 x 500k devices, every device of
   region 0 sending 40 messages to its partner in region 1 (20M records of
   16 bytes), measured as records received / region 1's run time;
2. speed-up of the 1000x1000 mesh (200 rounds: 800M deliveries) split into
   two regions (top and bottom halves) over one region: run phase, and
   end to end (run() to result, including both regions reading the file).

    .venv/bin/python bench/bench_dataplane.py
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import graphs  # noqa: E402
from pd import cluster  # noqa: E402

OUT = HERE / "out"


def generate(name: str, graph, rounds: int) -> Path:
    path = OUT / f"{name}.xml"
    if not path.exists():
        OUT.mkdir(exist_ok=True)
        with open(path.with_suffix(".tmp"), "w") as f:
            graphs.write(f, *graph, rounds=rounds)
        path.with_suffix(".tmp").rename(path)
    return path


def timed(pcli, path: Path, **kw) -> tuple[dict, float]:
    t = time.perf_counter()
    res = pcli.run(str(path), **kw)
    assert res["state"] == "finished", res.get("reason")
    return res, time.perf_counter() - t


def main() -> None:
    n = 500_000
    pairs = generate(f"pairs-{n}-r40", graphs.pairs(n), 40)
    mesh = generate("mesh-1000x1000-r200", graphs.mesh(1000, 1000), 200)
    with tempfile.TemporaryDirectory(prefix="pstack-bench-") as folder:
        os.environ["PSTACK_REDIS"] = cluster.start(folder, pds=2, slots=1)
        import pcli
        try:
            rmap = {f"n{i}": 1 for i in range(n, 2 * n)}
            res, _ = timed(pcli, pairs, rmap=rmap)
            r1 = res["regions"][1]
            rate = r1["Remote messages received"] / r1["Run time (s)"]
            print(f"link: {r1['Remote messages received']:,} records in {r1['Run time (s)']:.2f} s: "
                  f"{rate / 1e6:.1f} M records/s, {r1['Remote bytes'] / r1['Run time (s)'] / 2**20:.0f} MB/s")
            one, t1 = timed(pcli, mesh)
            split = {f"n{i}": 1 for i in range(500_000, 1_000_000)}
            two, t2 = timed(pcli, mesh, rmap=split)
            run1 = one["metrics"]["Run time (s)"]
            run2 = max(m["Run time (s)"] for m in two["regions"].values())
            assert one["states"] == two["states"]
            print(f"mesh 1000x1000, {one['metrics']['Delivered messages']:,} deliveries: "
                  f"1 region {run1:.2f} s, 2 regions {run2:.2f} s: run speed-up {run1 / run2:.2f}x; "
                  f"end to end {t1:.2f} s vs {t2:.2f} s: {t1 / t2:.2f}x")
        finally:
            cluster.stop(folder)


if __name__ == "__main__":
    main()
