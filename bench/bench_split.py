"""Does splitting a process pay off end to end?  On a local cluster
(redis-server, the scheduler and 2 pd with 1 slot each), the W x H mesh
(bench/graphs.py, `rounds` graph property: deliveries = rounds x edges) runs
with regions=1 and regions=2 (METIS in the client); for each, the time from
pcli.run() to its result, split into phases:

    client, to submitted    pcli.run() called -> the scheduler answered its submission; of which
      partition             pcli.run's partition() (regions > 1 only: read + METIS, or the cache)
      uploads               compressing and uploading the XML (in a thread, overlapping the
                            partition) and the instance form, summed
    queue                   submitted -> started (process record)
    region load             the regions' "Load time (s)" (read + compile, overlapped), slowest region
      of which compile      "Compile time (s)"
    region run              "Run time (s)", slowest region
    region other            started -> ended, less load and run: worker start, application to the
                            sandbox, data-plane handshake, shaping and recording the result
    result fetch/decode     ended -> run() returned: reading and merging the regions' results
      without states        pcli.result(pid, states=False) afterwards: the same, decoding no states

    .venv/bin/python bench/bench_split.py [W H ROUNDS] [--repeat N] [--cold]

Default 1000 1000 200 (1M devices, 4M edges, 800M deliveries).  The
client keeps the file's instance and partition in its cache
(psim/instcache.py, psim/partition.py), so a split run after the first
reads neither; --cold removes them before every run.  The figures depend on
the machine's load: say it (`uptime`) with them.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import graphs  # noqa: E402
from bench_dataplane import generate  # noqa: E402
from broker.control import Control  # noqa: E402
from pd import cluster, identities  # noqa: E402
from psim import instcache  # noqa: E402

PHASES = ("client, to submitted", "  partition", "  uploads", "queue", "region load", "  of which compile",
          "region run", "region other", "result fetch/decode", "  without states")


class Clock:
    """Seconds spent in the client's own steps of pcli.run, by wrapping them."""

    def __init__(self):
        self.spent: dict[str, float] = {}

    @contextmanager
    def wrapping(self, owner, name: str, phase: str):
        """Time calls of owner.name into `phase`, and note when the last one ended."""
        inner = getattr(owner, name)

        def timed(*args, **kw):
            t = time.perf_counter()
            try:
                return inner(*args, **kw)
            finally:
                self.spent[phase] = self.spent.get(phase, 0.0) + time.perf_counter() - t
                self.spent[f"{phase} end"] = time.time()
        setattr(owner, name, timed)
        try:
            yield
        finally:
            setattr(owner, name, inner)


def one_run(pcli, path: Path, regions: int) -> tuple[dict, dict[str, float], float]:
    """Run the mesh in `regions`; its result, its phases, and the total seconds."""
    import pcli.api as api
    clock = Clock()
    with clock.wrapping(api, "partition", "partition"), clock.wrapping(Control, "upload", "uploads"), \
            clock.wrapping(Control, "queue", "submit"):         # the submission's last request
        t0 = time.time()
        res = pcli.run(str(path), regions=regions)
        total = time.time() - t0
    assert res["state"] == "finished", res.get("reason")
    pid = max(pcli.ps(all=True))
    t = time.perf_counter()
    pcli.result(pid, states=False)
    bare = time.perf_counter() - t
    rec = pcli.info(pid)
    per_region = list(res["regions"].values()) if "regions" in res else [res["metrics"]]
    load = max(m["Load time (s)"] for m in per_region)
    run = max(m["Run time (s)"] for m in per_region)
    values = (clock.spent["submit end"] - t0, clock.spent.get("partition", 0.0), clock.spent["uploads"],
              rec["started"] - clock.spent["submit end"], load, max(m["Compile time (s)"] for m in per_region), run,
              rec["ended"] - rec["started"] - load - run, t0 + total - rec["ended"], bare)
    return res, dict(zip(PHASES, values)), total


def forget(path: Path) -> None:
    """Remove the client's cached instance and partitions of `path`."""
    key = instcache.content_key(path)
    for cached in [instcache.folder() / f"{key}.inst", *instcache.folder().glob(f"partitions/{key}-*.u16")]:
        cached.unlink(missing_ok=True)


def report(label: str, phases: dict[str, float], total: float) -> None:
    print(f"{label}: {total:.2f} s end to end")
    for k in PHASES:
        print(f"    {k:<24}{phases[k]:7.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", nargs="*", type=int, default=[1000, 1000, 200], help="W H ROUNDS")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, alternating")
    parser.add_argument("--cold", action="store_true", help="the client's cached instance and partition removed first")
    args = parser.parse_args()
    w, h, rounds = args.size
    mesh = generate(f"mesh-{w}x{h}-r{rounds}", graphs.mesh(w, h), rounds)
    warm = generate("mesh-10x10-r200", graphs.mesh(10, 10), 200)      # the same graph type: compiles it
    print(f"mesh {w}x{h}, rounds {rounds}; load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    with tempfile.TemporaryDirectory(prefix="pstack-bench-") as folder:
        cluster.start(folder, pds=2, slots=1)
        os.environ["PSTACK_REDIS"] = identities.add_user(Path(folder), "bench", "user")
        import pcli
        try:
            pcli.run(str(warm))
            pcli.run(str(warm), regions=2)
            totals: dict[int, list[float]] = {1: [], 2: []}
            states = {}
            for _ in range(args.repeat):
                for regions in (1, 2):
                    if args.cold:
                        forget(mesh)
                    time.sleep(1.0)                 # the daemons' spare workers are ready
                    res, phases, total = one_run(pcli, mesh, regions)
                    states[regions] = res["states"]
                    totals[regions].append(total)
                    report(f"regions={regions}", phases, total)
            assert states[1] == states[2], "the split run's states differ from the whole run's"
            best1, best2 = min(totals[1]), min(totals[2])
            print(f"end to end, best: 1 region {best1:.2f} s, 2 regions {best2:.2f} s: {best1 / best2:.2f}x; "
                  f"load now {os.getloadavg()[0]:.2f}")
        finally:
            cluster.stop(folder)


if __name__ == "__main__":
    main()
