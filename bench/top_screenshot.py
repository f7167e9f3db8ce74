"""docs/images/top.png: `pcli top --snapshot` of a small live cluster.

Starts a local cluster (pstack-cluster: two pd of 2 slots), adds users
alice and bob, runs alice's mesh in two regions (one on each engine) and
bob's ring, queues alice's second mesh (it waits for 2 slots), takes the
snapshot with `pcli -c "top --snapshot ..."` as alice, and stops the
cluster.

    .venv/bin/python bench/top_screenshot.py [FILE]     # default docs/images/top.png
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from graphs import mesh, ring, write

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ROUNDS = 10**7                     # longer than the snapshot: every process is still running
TIMEOUT = 120                      # and none outlives a failed run by long


def cluster(*args: str) -> str:
    done = subprocess.run([BIN / "pstack-cluster", *args], capture_output=True, text=True, check=True)
    return done.stdout


def app(folder: Path, name: str, graph) -> str:
    path = folder / f"{name}.xml"
    with open(path, "w") as f:
        write(f, *graph, rounds=ROUNDS)
    return str(path)


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="pstack-top-") as tmp:
        folder = Path(tmp)
        cluster("start", str(folder / "cluster"), "--pds", "2", "--slots", "2", "--name", "vm")
        try:
            urls = {u: cluster("adduser", str(folder / "cluster"), u).splitlines()[-1].split("=", 1)[1]
                    for u in ("alice", "bob")}
            import pcli
            grid, loop = app(folder, "mesh", mesh(120, 120)), app(folder, "ring", ring(2000))
            for user, path, regions in (("alice", grid, 2), ("bob", loop, 1), ("alice", grid, 2)):
                os.environ["PSTACK_REDIS"] = urls[user]
                pcli.run(path, regions=regions, timeout=TIMEOUT, async_=True)
            snap = subprocess.run([BIN / "pcli", "-q", "-c", f"top --snapshot {out} --size 100x16 --seconds 8"],
                                  env=dict(os.environ, PSTACK_REDIS=urls["alice"]), text=True)
            if snap.returncode:
                raise SystemExit("the snapshot failed")
        finally:
            cluster("stop", str(folder / "cluster"))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "images" / "top.png").resolve())
