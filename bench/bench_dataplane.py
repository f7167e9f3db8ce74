"""Data-plane figures on a local cluster (redis-server and two pd with one
slot each, so each region has a core):

1. records per second over one link: 2 x 500k devices, every device of
   region 0 sending 40 messages to its partner in region 1 (20M records of
   16 bytes); two processes (bench/link.py), timed from the first frame the
   receiver gets to the last record delivered;
2. speed-up of the 1000x1000 mesh (200 rounds: 800M deliveries) split into
   two regions (top and bottom halves) over one region: run phase, and
   end to end (run() to result, including both regions reading the file).

    .venv/bin/python bench/bench_dataplane.py [--plain] [--link-only]

Every data-plane socket runs CURVE (encrypted and authenticated by libzmq),
as on every cluster; --plain runs plain TCP (PSTACK_CURVE=off), to measure
what CURVE costs.  --link-only measures the link and skips the mesh.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import graphs  # noqa: E402
from broker.credentials import read_url_file  # noqa: E402
from pd import cluster, identities  # noqa: E402



def generate(name: str, graph, rounds: int) -> Path:
    return graphs.generated(name, lambda f: graphs.write(f, *graph, rounds=rounds))


def timed(pcli, path: Path, **kw) -> tuple[dict, float]:
    t = time.perf_counter()
    res = pcli.run(str(path), **kw)
    assert res["state"] == "finished", res.get("reason")
    return res, time.perf_counter() - t


def link(url: str, path: Path) -> None:
    import multiprocessing
    import link as link_side
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    sides = [ctx.Process(target=link_side.side, args=(url, str(path), r, 999_999, out)) for r in (0, 1)]
    for p in sides:
        p.start()
    got = {m[0]: m[1:] for m in (out.get(timeout=300), out.get(timeout=300))}
    for p in sides:
        p.join()
    (sent, send_s), (received, recv_s, wire_bytes, curve) = got["sent"], got["received"]
    assert sent == received, (sent, received)
    print(f"link ({'CURVE' if curve else 'plain TCP'}): {received:,} records; sender {send_s:.2f} s, "
          f"receiver {recv_s:.2f} s from its first frame: "
          f"{received / recv_s / 1e6:.1f} M records/s ({wire_bytes / recv_s / 2**20:.0f} MB/s on the wire)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain", action="store_true", help="plain TCP on every data-plane socket (no CURVE)")
    parser.add_argument("--link-only", action="store_true", help="measure the link, not the mesh")
    args = parser.parse_args()
    if args.plain:
        os.environ["PSTACK_CURVE"] = "off"         # the link's sides and the cluster's workers inherit it
    n = 500_000
    pairs = generate(f"pairs-{n}-r40", graphs.pairs(n), 40)
    mesh = generate("mesh-1000x1000-r200", graphs.mesh(1000, 1000), 200)
    with tempfile.TemporaryDirectory(prefix="pstack-bench-") as folder:
        cluster.start(folder, pds=2, slots=1)
        os.environ["PSTACK_REDIS"] = identities.add_user(Path(folder), "bench", "user")
        import pcli
        try:
            link(read_url_file(identities.engine_path(Path(folder))), pairs)     # two bare regions: engines
            if args.link_only:
                return
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
