"""A burst of submissions: N processes from U users at once, on a local
secured cluster (redis-server, the scheduler and pd under supervisord in a
temporary folder, as `pstack-cluster start` makes it).  Each user is a
client process of its own submitting through pcli.run(async_=True) from 8
threads; then every process is followed to its end.  Prints what happened
to each (finished with psim's answer, failed with a reason, lost), the
time to get a pid and from submission to start (p50/p99), and how long
Redis ran each script that makes a scheduling pass (SLOWLOG, every
command logged).

    .venv/bin/python bench/bench_burst.py [--processes 1000] [--users 4] [--pds 2] [--slots 2] [--json]

tests/cluster/test_burst.py runs burst() on its own cluster and checks it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from broker import keys  # noqa: E402
from broker.control import Control  # noqa: E402

RING = str(ROOT / "tests" / "apps" / "ring_v2.xml")
THREADS = 8                     # submitting threads per user
PASSES = ("submit", "finish_region", "kill", "reap", "claim")    # scripts that may run a scheduling pass
SLOWLOG_LEN = 1_000_000


def client(n: int, app: str) -> list[dict]:
    """In a user's process: submit `n` processes of `app` at once; for each,
    when it was asked (epoch s), when its pid came, and the pid or the error."""
    import pcli

    def one(_) -> dict:
        asked = time.time()
        try:
            pid = pcli.run(app, async_=True).pid
        except Exception as e:             # noqa: BLE001 - every outcome is reported
            return {"asked": asked, "got": time.time(), "error": f"{type(e).__name__}: {e}"}
        return {"asked": asked, "got": time.time(), "pid": pid}
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, range(n)))


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def burst(urls: dict[str, str], admin_url: str, per_user: int, app: str = RING, limit: float = 1800) -> dict:
    """Submit `per_user` processes from each user of `urls` (name -> its own
    Redis URL) at once; follow them to their end (at most `limit` s); the
    report (see main)."""
    admin = redis.Redis.from_url(admin_url)
    admin.config_set("slowlog-log-slower-than", 0)
    admin.config_set("slowlog-max-len", SLOWLOG_LEN)
    admin.slowlog_reset()
    scripts = ScriptTimes(admin)
    start = time.time()
    clients = [subprocess.Popen([sys.executable, __file__, "--client", str(per_user), "--app", app],
                                stdout=subprocess.PIPE, env=dict(os.environ, PSTACK_REDIS=url), cwd=ROOT)
               for url in urls.values()]
    subs = [s for c in clients for s in json.loads(c.communicate()[0])]
    pids = [s["pid"] for s in subs if "pid" in s]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and not all(ended(admin, pid) for pid in pids):
        time.sleep(0.5)
    took = time.time() - start
    scripts.collect()
    admin.config_set("slowlog-log-slower-than", 10_000)
    records = {pid: {k.decode(): v.decode() for k, v in admin.hgetall(keys.proc(pid)).items()} for pid in pids}
    results = Control(admin)
    outcomes: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for pid, rec in records.items():
        state = rec.get("state", "lost")
        if state == "finished" and not results.results(pid):
            state = "finished without a result"
        if state == "failed":
            reasons[rec.get("reason") or "(no reason)"] = reasons.get(rec.get("reason") or "(no reason)", 0) + 1
        outcomes[state] = outcomes.get(state, 0) + 1
    to_pid = [s["got"] - s["asked"] for s in subs if "pid" in s]
    to_start = [float(records[s["pid"]]["started"]) - s["asked"] for s in subs
                if "pid" in s and "started" in records[s["pid"]]]
    return {"processes": len(subs), "users": len(urls), "with_pid": len(pids),
            "refused": [s["error"] for s in subs if "error" in s],
            "outcomes": outcomes, "failed_reasons": reasons, "seconds": round(took, 1),
            "processes_per_s": round(len(pids) / took, 1),
            "to_pid_ms": {"p50": ms(pct(to_pid, 50)), "p99": ms(pct(to_pid, 99))},
            "submit_to_start_ms": {"p50": ms(pct(to_start, 50)), "p99": ms(pct(to_start, 99))},
            "scripts_ms": scripts.summary()}


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def ended(admin: redis.Redis, pid: int) -> bool:
    return (admin.hget(keys.proc(pid), "state") or b"").decode() in keys.ENDED


class ScriptTimes:
    """How long each of our scripts ran, from SLOWLOG (every command logged),
    drained each second so that a long burst does not overflow it."""

    def __init__(self, admin: redis.Redis):
        self.admin = admin
        self.names = {s.sha: name for name, s in Control(admin).s.items()}
        self.times: dict[str, list[float]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.drain, daemon=True)
        self.thread.start()

    def drain(self) -> None:
        while not self.stop.wait(1.0):
            self.take()

    def take(self) -> None:
        with self.admin.pipeline(transaction=True) as p:      # nothing logged between reading and clearing
            p.slowlog_get(SLOWLOG_LEN)
            p.slowlog_reset()
            entries, _ = p.execute()
        for entry in entries:
            cmd = entry["command"].split()
            if len(cmd) > 1 and cmd[0].upper() == b"EVALSHA":
                sha = cmd[1].decode()
                self.times.setdefault(self.names.get(sha, sha[:8]), []).append(entry["duration"] / 1000)

    def collect(self) -> None:
        self.stop.set()
        self.thread.join()
        self.take()

    def summary(self) -> dict[str, dict[str, float]]:
        """p50, p99 and max in ms, and how many runs, by script."""
        return {name: {"n": len(t), "p50": round(pct(t, 50), 2), "p99": round(pct(t, 99), 2),
                       "max": round(max(t), 2)} for name, t in sorted(self.times.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--processes", type=int, default=1000)
    ap.add_argument("--users", type=int, default=4)
    ap.add_argument("--pds", type=int, default=2)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--app", default=RING)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--client", type=int, help=argparse.SUPPRESS)     # a user's submitting process
    args = ap.parse_args()
    if args.client is not None:
        print(json.dumps(client(args.client, args.app)))
        return
    from pd import cluster, identities
    with tempfile.TemporaryDirectory(prefix="pstack-burst-") as folder:
        cluster.start(folder, pds=args.pds, slots=args.slots)
        try:
            urls = {f"u{i}": identities.add_user(Path(folder), f"u{i}", "user")
                    for i in range(args.users)}
            admin = identities.add_user(Path(folder), "burstadmin", "admin")
            report = burst(urls, admin, args.processes // args.users, args.app)
        finally:
            cluster.stop(folder)
    if args.json:
        print(json.dumps(report))
        return
    print(f"{report['processes']} submissions from {report['users']} users at once, "
          f"{args.pds} engines x {args.slots} slots: {report['seconds']} s, {report['processes_per_s']} processes/s")
    print(f"  pids: {report['with_pid']}; refused: {len(report['refused'])}; outcomes: {report['outcomes']}")
    for why, n in report["failed_reasons"].items():
        print(f"  failed x{n}: {why}")
    print(f"  time to pid: p50 {report['to_pid_ms']['p50']} ms, p99 {report['to_pid_ms']['p99']} ms")
    print(f"  submit to start: p50 {report['submit_to_start_ms']['p50']} ms, "
          f"p99 {report['submit_to_start_ms']['p99']} ms")
    for name, t in report["scripts_ms"].items():
        if name in PASSES:
            print(f"  script {name}: {t['n']} runs, p50 {t['p50']} ms, p99 {t['p99']} ms, max {t['max']} ms")


if __name__ == "__main__":
    main()
