"""`python -m pd.cluster`: a real supervisord running a real redis-server and
real pd daemons in a temp folder; a daemon killed with SIGKILL comes back;
`stop` leaves nothing behind, also when `start` fails."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis

from broker import keys
from pd.cluster import rpc

ROOT = Path(__file__).resolve().parents[2]


def run_cluster(*args: object, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pd.cluster", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def processes_of(d: Path) -> list[psutil.Process]:
    """Processes working in D or naming it: supervisord, redis, pd, workers."""
    found = []
    for p in psutil.process_iter(["cwd", "cmdline", "status"]):
        if p.pid == os.getpid() or p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cwd, cmd = p.info["cwd"] or "", " ".join(p.info["cmdline"] or ())
        if cwd == str(d) or cwd.startswith(f"{d}/") or str(d) in cmd:
            found.append(p)
    return found


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.1)


@pytest.fixture
def cluster_dir(tmp_path):
    d = tmp_path / "c"
    yield d
    run_cluster("stop", d)                       # even when the test failed
    left = processes_of(d)
    for p in left:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(left, timeout=5)


def pd_pids(d: Path) -> dict[str, int]:
    return {i["name"]: i["pid"] for i in rpc(d).supervisor.getAllProcessInfo()
            if i["name"].startswith("pd-") and i["statename"] == "RUNNING"}


def test_cluster_starts_restarts_a_killed_daemon_and_stops_cleanly(cluster_dir):
    d = cluster_dir
    out = run_cluster("start", d, "--pds", 2, "--slots", 2, "--name", "t")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("PSTACK_REDIS=redis://127.0.0.1:")
    url = out.stdout.strip().split("=", 1)[1]
    assert run_cluster("url", d).stdout.strip() == url
    r = redis.Redis.from_url(url, decode_responses=True)
    assert r.ping()
    assert r.smembers(keys.ENGINES) == {"t-0", "t-1"}
    assert int(r.hget(keys.engine("t-0"), "slots")) == 2

    status = run_cluster("status", d)
    assert status.returncode == 0, status.stdout
    assert [line.split()[:2] for line in status.stdout.splitlines()] == [
        ["redis", "RUNNING"], ["pd-0", "RUNNING"], ["pd-1", "RUNNING"]]

    pids = pd_pids(d)
    server = {i["name"]: i["pid"] for i in rpc(d).supervisor.getAllProcessInfo()}["redis"]
    first = [server, *pids.values(), int((d / "supervisord.pid").read_text())]
    assert r.hget(keys.engine("t-0"), "daemon").split(":")[1] == str(pids["pd-0"])

    os.kill(pids["pd-0"], signal.SIGKILL)
    # supervisord starts it again; the new daemon registers once the dead
    # one's heartbeat has expired (3 s)
    new = wait_for(lambda: pd_pids(d).get("pd-0", pids["pd-0"]) != pids["pd-0"]
                   and pd_pids(d)["pd-0"], 15, "pd-0 running again")
    wait_for(lambda: (r.hget(keys.engine("t-0"), "daemon") or "::").split(":")[1] == str(new),
             15, "pd-0 registered again")
    assert r.smembers(keys.ENGINES) == {"t-0", "t-1"}
    assert pd_pids(d)["pd-1"] == pids["pd-1"]

    stop = run_cluster("stop", d)
    assert stop.returncode == 0, stop.stderr
    assert not [p for p in first + [new] if psutil.pid_exists(p)
                and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert processes_of(d) == []
    assert not (d / "supervisord.pid").exists()

    # a stopped cluster: stop is harmless, status says so
    assert run_cluster("stop", d).returncode == 0
    status = run_cluster("status", d)
    assert status.returncode == 1 and "no cluster is running" in status.stdout


def test_a_failed_start_says_why_and_leaves_nothing_running(cluster_dir):
    d = cluster_dir
    with socket.socket() as taken:           # the port redis is told to use
        taken.bind(("127.0.0.1", 0))
        out = run_cluster("start", d, "--port", taken.getsockname()[1], "--pds", 1)
    assert out.returncode == 1
    assert out.stdout == ""
    assert "gave up on redis" in out.stderr
    assert "Address already in use" in out.stderr    # the tail of redis.log
    assert processes_of(d) == []
