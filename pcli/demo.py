"""`make demo`: start a local cluster (redis-server, the scheduler and two
pd under supervisord) in a temporary folder, add a user `demo`, run the
ring oscillator as that user through the Python API split into two regions
(n0, n1 | n2, n3), one on each engine, print its result, and stop the
cluster."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from broker.credentials import redact

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "tests" / "apps" / "ring_v2.xml"


def cluster(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "pd.cluster", *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"pstack-cluster {args[0]} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="pstack-demo-") as folder:
        print(f"Starting a local cluster in {folder} (redis-server, the scheduler, 2 x pd)")
        cluster("start", folder, "--pds", "2")
        try:
            # adduser's last line is the user's PSTACK_REDIS=URL (kept in this process only)
            url = cluster("adduser", folder, "demo").splitlines()[-1].split("=", 1)[1]
            os.environ["PSTACK_REDIS"] = url
            print(f"Added user demo: pcli connects as {redact(url)}")
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
