"""The binary instance cache (psim/instcache.py): for the 1000x1000 mesh
(1M devices, 4M edges), print the cold read (parsed, then written to the
cache), the warm start (Loaded and load_instance returning, from the
cache: with the content hash memoized, and hashing the file again), the
parts of a warm start, the cache file's size and each case's peak RSS.

    .venv/bin/python bench/bench_cache.py [--side N]

Each measurement runs in a fresh process (peak memory is its own), on a
cache folder of its own whose compiled modules are built by the first.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_psim import generate  # noqa: E402
from fresh import run_json  # noqa: E402


def measure(path: str, what: str) -> dict:
    """In this process: Loaded(path) or load_instance(path), timed."""
    from psim.run import Loaded, load_instance

    t0 = time.perf_counter()
    if what == "loaded":
        loaded = Loaded(path)
        inst, cached = loaded.instance, loaded.instance_cached
    else:
        inst = load_instance(path)
        cached = type(inst.ids) is not list
    seconds = time.perf_counter() - t0
    return {"s": seconds, "cached": cached, "devices": inst.n_devices, "edges": inst.n_edges,
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def parts(path: str) -> dict:
    """A warm start's parts, one after the other, in this process."""
    import hashlib

    from psim import build, instcache
    from psim.reader import Source, read_graph_type

    lib, ffi = build.loader_module().lib, build.loader_module().ffi
    t = [time.perf_counter()]
    src = Source(path)
    graph, ns = read_graph_type(src)
    t.append(time.perf_counter())
    key = instcache.content_key(src.path)
    t.append(time.perf_counter())
    with open(path, "rb") as f:
        hashlib.file_digest(f, "sha256")
    t.append(time.perf_counter())
    inst = instcache.load(instcache.folder() / (key + ".inst"), src, graph, ns, lib, ffi)
    t.append(time.perf_counter())
    list(inst.ids)
    t.append(time.perf_counter())
    names = ["pass 1 (GraphType)", "key, hash memoized", "sha256 of the file", "cache file to Instance",
             "all ids as str (lazy: on first use)"]
    return {name: t[i + 1] - t[i] for i, name in enumerate(names)}


def child(path: Path, cache: str, mode: str, what: str = "loaded") -> dict:
    return run_json(__file__, [mode, what, str(path)], {"PSTACK_CACHE": cache})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--parts", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--side", type=int, default=1000, help="mesh side (default 1000: 1M devices)")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[1], args.one[0])))
        return
    if args.parts:
        print(json.dumps(parts(args.parts[1])))
        return
    path = generate(f"mesh-{args.side}x{args.side}", "mesh", args.side, args.side)
    os.utime(path, (time.time() - 10, time.time() - 10))    # old enough for its hash to be memoized
    print(f"load: {os.getloadavg()[0]:.2f}  file: {path} ({path.stat().st_size / 2**20:.0f} MB)")
    with tempfile.TemporaryDirectory() as cache:
        child(path, cache, "--one")                           # compiles the modules; writes the entry
        shutil.rmtree(Path(cache) / "instances")               # the cold row: modules cached, the instance not
        rows = [("cold: parse, write the entry", child(path, cache, "--one")),
                ("warm Loaded, hash memoized", child(path, cache, "--one")),
                ("warm load_instance, hash memoized", child(path, cache, "--one", "instance"))]
        shutil.rmtree(Path(cache) / "instances" / "hashes")
        rows.append(("warm Loaded, file hashed", child(path, cache, "--one")))
        size = sum(p.stat().st_size for p in (Path(cache) / "instances").glob("*.inst"))
        split = child(path, cache, "--parts")
    print(f"{'case':36} {'devices':>9} {'edges':>9} {'cached':>6} {'s':>7} {'peak MB':>8}")
    for name, r in rows:
        print(f"{name:36} {r['devices']:9d} {r['edges']:9d} {str(r['cached']):>6} {r['s']:7.3f} "
              f"{r['peak_rss'] / 2**20:8.0f}")
    print(f"\ncache file: {size / 2**20:.1f} MB")
    print("warm start, part by part (s):")
    for name, s in split.items():
        print(f"  {name:40} {s:.3f}")


if __name__ == "__main__":
    main()
