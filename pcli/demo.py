"""`make demo`: start a local cluster (redis-server and two pd under
supervisord) in a temporary folder, run the ring oscillator through the
Python API split into two regions (n0, n1 | n2, n3), one on each engine,
print its result, and stop the cluster."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "tests" / "apps" / "ring_v2.xml"


def cluster(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "pd.cluster", *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"pstack-cluster {args[0]} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="pstack-demo-") as folder:
        print(f"Starting a local cluster in {folder} (redis-server, 2 x pd)")
        out = cluster("start", folder, "--pds", "2")
        url = next(line.split("=", 1)[1] for line in out.splitlines() if line.startswith("PSTACK_REDIS="))
        os.environ["PSTACK_REDIS"] = url
        try:
            import pcli
            print("Engines:", ", ".join(f"{e['name']} ({e['slots']} slot)" for e in pcli.engines()))
            rmap = {"n2": 1, "n3": 1}
            print(f"Running {APP.name} through pcli.run(verbose=True, rmap={rmap}):")
            future = pcli.run(str(APP), rmap=rmap, verbose=True, async_=True)
            res = future.result()
            engines = pcli.info(future.pid)["engines"]
            print(f"Process {future.pid} ended: {res['state']}, exit code {res['metrics']['Exit code']}")
            for name in ("Delivered messages", "Sends"):
                print(f"Metric {name}: {res['metrics'][name]}")
            for region, m in res["regions"].items():
                print(f"Region {region} on {engines[region]}: {m['Delivered messages']} delivered, "
                      f"{m['Remote messages sent']} records sent, {m['Remote messages received']} received")
            for dev, state in res["states"].items():
                print(f"State  {dev}: counter={state['counter']} state={state['state']}")
        finally:
            cluster("stop", folder)
            print("Cluster stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
