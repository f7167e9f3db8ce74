"""Does splitting a process pay off end to end?  On a local cluster
(redis-server, the scheduler and 2 pd with 1 slot each), the W x H mesh
(bench/graphs.py, `rounds` graph property: deliveries = rounds x edges) runs
with regions=1 and regions=2 (METIS in the client); for each, the time from
pcli.run() to its result, split into phases:

    client read+partition   pcli.run's partition() (regions > 1 only)
    submit (upload)         compress + upload the application (and partition) + the scheduler's answer
    queue                   submitted -> started (process record)
    region load             the regions' "Load time (s)" (read + compile, overlapped), slowest region
      of which compile      "Compile time (s)"
    region run              "Run time (s)", slowest region
    region other            started -> ended, less load and run: worker start, application to the
                            sandbox, data-plane handshake, shaping and recording the result
    result fetch/decode     ended -> run() returned: reading and merging the regions' results

    .venv/bin/python bench/bench_split.py [W H ROUNDS] [--repeat N]

Default 1000 1000 200 (1M devices, 4M edges, 800M deliveries).  The
figures depend on the machine's load: say it (`uptime`) with them.
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

PHASES = ("client read+partition", "submit (upload)", "queue", "region load", "  of which compile",
          "region run", "region other", "result fetch/decode")


class Clock:
    """Seconds spent in the client's own steps of pcli.run, by wrapping them."""

    def __init__(self):
        self.spent: dict[str, float] = {}

    @contextmanager
    def wrapping(self, owner, name: str, phase: str):
        inner = getattr(owner, name)

        def timed(*args, **kw):
            t = time.perf_counter()
            try:
                return inner(*args, **kw)
            finally:
                self.spent[phase] = self.spent.get(phase, 0.0) + time.perf_counter() - t
        setattr(owner, name, timed)
        try:
            yield
        finally:
            setattr(owner, name, inner)


def one_run(pcli, path: Path, regions: int) -> tuple[dict, dict[str, float], float]:
    """Run the mesh in `regions`; its result, its phases, and the total seconds."""
    import pcli.api as api
    clock = Clock()
    with clock.wrapping(api, "partition", PHASES[0]), clock.wrapping(Control, "submit", PHASES[1]):
        t0 = time.time()
        res = pcli.run(str(path), regions=regions)
        total = time.time() - t0
    assert res["state"] == "finished", res.get("reason")
    pid = max(pcli.ps(all=True))
    rec = pcli.info(pid)
    per_region = list(res["regions"].values()) if "regions" in res else [res["metrics"]]
    load = max(m["Load time (s)"] for m in per_region)
    run = max(m["Run time (s)"] for m in per_region)
    phases = {PHASES[0]: clock.spent.get(PHASES[0], 0.0), PHASES[1]: clock.spent[PHASES[1]],
              PHASES[2]: rec["started"] - rec["created"], PHASES[3]: load,
              PHASES[4]: max(m["Compile time (s)"] for m in per_region), PHASES[5]: run,
              PHASES[6]: rec["ended"] - rec["started"] - load - run,
              PHASES[7]: t0 + total - rec["ended"]}
    return res, phases, total


def report(label: str, phases: dict[str, float], total: float) -> None:
    print(f"{label}: {total:.2f} s end to end")
    for k in PHASES:
        print(f"    {k:<24}{phases[k]:7.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", nargs="*", type=int, default=[1000, 1000, 200], help="W H ROUNDS")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, alternating")
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
