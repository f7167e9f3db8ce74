"""`python -m pd.cluster`: a real supervisord running a real redis-server and
real pd daemons in a temp folder; a daemon killed with SIGKILL comes back;
`stop` leaves nothing behind, also when `start` fails; `start` never joins
another Redis; Redis persists across its own crash and a stop/start;
after supervisord is SIGKILLed, `stop` and `start` recover its orphans;
`check` runs a ring on every pair of engines and names those that fail."""
from __future__ import annotations

import ipaddress
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
from clusters import identity, processes_of, run_cluster, start_cluster, stop_and_sweep
from conftest import gone, kill_tree
from faults import record
from tinyapp import forever_app, ring_app

import pcli
from broker import keys
from broker.credentials import redact
from pd.cluster import interface_address, is_loopback, redis_host, rpc, supervisord_process

ROOT = Path(__file__).resolve().parents[2]


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
    stop_and_sweep(d)


@pytest.fixture
def worker_dir(tmp_path):
    d = tmp_path / "w"
    yield d
    stop_and_sweep(d)


def redis_pid(d: Path) -> int:
    return rpc(d).supervisor.getProcessInfo("redis")["pid"]


def alive_engines() -> set[str]:
    try:
        return {e["name"] for e in pcli.engines() if e["alive"]}
    except redis.ConnectionError:
        return set()


def pd_pids(d: Path) -> dict[str, int]:
    return {i["name"]: i["pid"] for i in rpc(d).supervisor.getAllProcessInfo()
            if i["name"].startswith("pd-") and i["statename"] == "RUNNING"}


def test_cluster_starts_restarts_a_killed_daemon_and_stops_cleanly(cluster_dir):
    d = cluster_dir
    out = run_cluster("start", d, "--pds", 2, "--slots", 2, "--name", "t")
    assert out.returncode == 0, out.stderr
    public = run_cluster("url", d).stdout.strip()
    assert public.startswith("redis://127.0.0.1:")
    assert out.stdout.startswith(f"pstack head started in {d}: Redis at {public}, engines t-0, t-1\n")
    r = redis.Redis.from_url(identity(d, "admin"), decode_responses=True)
    assert r.ping()
    assert r.smembers(keys.ENGINES) == {"t-0", "t-1"}
    assert int(r.hget(keys.engine("t-0"), "slots")) == 2

    status = run_cluster("status", d)
    assert status.returncode == 0, status.stdout
    assert [line.split()[:2] for line in status.stdout.splitlines()] == [
        ["redis", "RUNNING"], ["pd-0", "RUNNING"], ["pd-1", "RUNNING"], ["scheduler", "RUNNING"]]

    pids = pd_pids(d)
    server = {i["name"]: i["pid"] for i in rpc(d).supervisor.getAllProcessInfo()}["redis"]
    scheduler = rpc(d).supervisor.getProcessInfo("scheduler")["pid"]
    first = [server, scheduler, *pids.values(), int((d / "supervisord.pid").read_text())]
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


def test_a_start_on_a_taken_port_says_why_and_leaves_nothing_running(cluster_dir):
    d = cluster_dir
    with socket.socket() as taken:           # the port redis is told to use
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        out = run_cluster("start", d, "--port", port, "--pds", 1)
    assert out.returncode == 1
    assert out.stdout == ""
    assert f"port {port} on 127.0.0.1 is taken (Address already in use)" in out.stderr
    assert processes_of(d) == []


def test_start_on_the_port_of_another_redis_fails_and_joins_nothing(cluster_dir, redis_server):
    foreign = redis.Redis.from_url(redis_server.url)
    out = run_cluster("start", cluster_dir, "--port", redis_server.port, "--pds", 1)
    assert out.returncode == 1
    assert out.stdout == ""
    assert f"port {redis_server.port} on 127.0.0.1 is taken" in out.stderr
    assert processes_of(cluster_dir) == []
    assert foreign.ping() and not foreign.keys("pstack:engine*")     # no engine registered there
    assert not foreign.exists("pstack:folder")                        # nor does it think it is the cluster's
    record("`pstack-cluster start --port P` with another Redis on P",
           "start exits 1 with the reason; nothing starts, nothing joins the other Redis", None)


def test_a_redis_that_cannot_start_fails_the_start_before_any_daemon(cluster_dir):
    d = cluster_dir
    start_cluster(d, "--pds", 1)
    assert run_cluster("stop", d).returncode == 0
    (d / "appendonlydir" / "appendonly.aof.manifest").write_text("not a manifest\n")
    out = run_cluster("start", d, "--name", "t", "--pds", 1)
    assert out.returncode == 1
    assert "supervisord gave up on redis" in out.stderr
    assert "manifest" in out.stderr                       # redis.log says what is wrong
    assert "pd-0.log" not in out.stderr                   # no daemon was started
    assert processes_of(d) == []
    record("the head's Redis cannot start (damaged AOF)",
           "start exits 1 with redis.log's tail; no daemon is started", None)


def test_a_redis_crash_loses_no_process(cluster_dir, monkeypatch):
    d = cluster_dir
    monkeypatch.setenv("PSTACK_REDIS", start_cluster(d, "--pds", 1, "--slots", 1))
    busy = pcli.run(forever_app("crash"), async_=True)
    wait_for(lambda: pcli.info(busy.pid)["state"] == "running", 15, "the first process running")
    queued = pcli.run(ring_app("crash"), async_=True)
    assert pcli.info(queued.pid)["state"] == "waiting"      # the only slot is busy

    old = redis_pid(d)
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: redis_pid(d) not in (0, old), 15, "supervisord restarting redis")
    wait_for(lambda: alive_engines() == {"t-0"}, 15, "the engine registered again")
    assert pcli.info(queued.pid)["state"] in ("waiting", "running", "finished")
    pcli.kill(busy.pid)                                     # frees the slot (if the crash did not)
    res = pcli.block(queued)
    assert res["state"] == "finished" and res["metrics"]["Delivered messages"] == 12
    assert pcli.run(ring_app("crash"), async_=True).pid == queued.pid + 1
    record("the head's redis-server SIGKILLed (supervisord restarts it)",
           "the engines register again; a queued process still runs; pids are not reused", None)


def test_stop_and_start_of_a_folder_keep_processes_and_pids(cluster_dir, monkeypatch):
    d = cluster_dir
    url = start_cluster(d, "--pds", 1)
    monkeypatch.setenv("PSTACK_REDIS", url)
    done = [pcli.run(ring_app("restart"), async_=True) for _ in range(2)]
    assert [r["state"] for r in pcli.block(done)] == ["finished"] * 2
    assert run_cluster("stop", d).returncode == 0

    assert run_cluster("start", d, "--name", "t", "--pds", 1).returncode == 0
    assert run_cluster("url", d).stdout.strip() == url.replace(url[8:url.index("@") + 1], "")   # same port
    assert [pcli.info(f.pid)["state"] for f in done] == ["finished"] * 2
    assert pcli.result(done[1].pid)["metrics"]["Delivered messages"] == 12
    assert pcli.run(ring_app("restart"), async_=True).pid == done[1].pid + 1


def kill_supervisord(d: Path) -> list[psutil.Process]:
    """SIGKILL D's supervisord; the programs it leaves running (orphans)."""
    sup = supervisord_process(d)
    programs = [psutil.Process(i["pid"]) for i in rpc(d).supervisor.getAllProcessInfo()]
    assert len(programs) == 3                               # redis, scheduler, pd-0
    sup.kill()
    wait_for(lambda: gone([sup]), 10, "supervisord gone")
    assert not any(gone([p]) for p in programs) and supervisord_process(d) is None
    return programs + [p for p in processes_of(d) if p not in programs]


def served(after: int = 0) -> int:
    """$PSTACK_REDIS's cluster runs a new process to psim's answer, with the
    pid after AFTER when given (its Redis kept the counter); its pid."""
    future = pcli.run(ring_app("orphans"), async_=True)
    done = pcli.block(future)
    assert done["state"] == "finished" and done["metrics"]["Delivered messages"] == 12
    assert not after or future.pid == after + 1
    return future.pid


def test_stop_after_supervisord_died_stops_its_orphans_only(cluster_dir, tmp_path, monkeypatch):
    d, other = cluster_dir, tmp_path / "other"
    try:
        monkeypatch.setenv("PSTACK_REDIS", start_cluster(d, "--pds", 1))
        start_cluster(other, "--pds", 1)
        neighbours = processes_of(other)
        first = served()
        orphans = kill_supervisord(d)

        t0 = time.monotonic()
        out = run_cluster("stop", d)
        seconds = time.monotonic() - t0
        assert out.returncode == 0, out.stderr
        assert f"orphaned processes of the cluster in {d}" in out.stderr
        assert gone(orphans) and processes_of(d) == []
        assert "killing" not in out.stderr                    # all ended on SIGTERM (Redis: AOF flushed)
        assert not gone(neighbours) and processes_of(other) == neighbours

        assert run_cluster("start", d, "--name", "t", "--pds", 1).returncode == 0
        served(first)
    finally:
        stop_and_sweep(other)
    record("the head's supervisord SIGKILLed; then `pstack-cluster stop DIR`",
           "stop finds its orphans (redis, scheduler, pd, workers) and stops them, Redis last with SIGTERM "
           "(AOF flushed); another cluster's are untouched; start then serves", seconds)


def test_start_after_supervisord_died_recovers_its_orphans(cluster_dir, monkeypatch):
    d = cluster_dir
    monkeypatch.setenv("PSTACK_REDIS", start_cluster(d, "--pds", 1))
    first = served()
    orphans = kill_supervisord(d)

    t0 = time.monotonic()
    out = run_cluster("start", d, "--name", "t", "--pds", 1)
    seconds = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    assert f"orphaned processes of the cluster in {d}" in out.stderr
    assert gone(orphans) and "killing" not in out.stderr
    served(first)
    record("the head's supervisord SIGKILLed; then `pstack-cluster start DIR` (as the systemd unit does)",
           "start stops the orphans first (Redis with SIGTERM), then starts the cluster on the same port; "
           "nothing is lost", seconds)


def unassigned_address() -> str:
    """An address of TEST-NET-3 that no interface here has: a region
    advertising it cannot listen (it binds where it advertises), so nothing
    is ever sent to it."""
    local = {a.address for addrs in psutil.net_if_addrs().values() for a in addrs}
    return next(str(ip) for ip in ipaddress.ip_network("203.0.113.0/24").hosts()
                if str(ip) not in local)


def test_check_runs_every_pair_and_names_the_engine_nobody_reaches(cluster_dir, worker_dir,
                                                                   monkeypatch, tmp_path):
    url = start_cluster(cluster_dir, "--pds", 1)
    engine = identity(cluster_dir, "engine")
    monkeypatch.setenv("PSTACK_REDIS", engine)              # worker takes the URL from here
    out = run_cluster("worker", worker_dir, "--pds", 1, "--name", "w")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"pstack worker started in {worker_dir}: Redis at {redact(engine)}, engines w-0"
    assert "pstack-engine:***@" in out.stdout
    monkeypatch.setenv("PSTACK_REDIS", url)

    ok = run_cluster("check", cluster_dir)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    lines = ok.stdout.splitlines()
    assert lines[0].split()[:4] == ["t-0", "w-0", "ok", "in"]
    assert lines[1:] == ["all 1 pairs of 2 engines ok"]

    bad_address = unassigned_address()
    with open(tmp_path / "pd-bad.log", "wb") as log:
        bad = subprocess.Popen([sys.executable, "-m", "pd", "-n", "x-bad", "-w", "1",
                                "--advertise", bad_address], cwd=ROOT, stdout=log, stderr=log,
                               env=dict(os.environ, PSTACK_REDIS=engine))
    try:
        wait_for(lambda: "x-bad" in alive_engines(), 15, "the third daemon registered")
        out = run_cluster("check", cluster_dir, "--timeout", 30)
    finally:
        kill_tree(bad)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["t-0", "w-0", "ok"]
    for line, peer in zip(lines[1:3], ["t-0", "w-0"]):
        assert line.split()[:3] == [peer, "x-bad", "FAILED:"]
        assert f"cannot listen on {bad_address}" in line
    assert lines[3] == "2 of 3 pairs cannot run together: t-0 <-> x-bad, w-0 <-> x-bad"
    assert lines[4].startswith("x-bad fails with every other engine")


def test_addresses_for_other_hosts_are_never_loopback_names():
    wildcard = redis_host("0.0.0.0", None)
    assert wildcard == interface_address() and not is_loopback(wildcard)
    assert ipaddress.ip_address(wildcard).version == 4
    assert redis_host("0.0.0.0", wildcard) == wildcard
    assert redis_host("127.0.0.1", None) == "127.0.0.1"
    assert is_loopback("localhost") and is_loopback("127.0.0.2") and is_loopback(None)


def test_a_loopback_advertise_is_refused_when_redis_is_remote(worker_dir, cluster_dir):
    remote = f"redis://{interface_address()}:6379/0"       # refused before anything is sent
    out = run_cluster("worker", worker_dir, "--advertise", "127.0.0.1", PSTACK_REDIS=remote)
    assert out.returncode == 1
    assert "loopback address but Redis is reached from other hosts" in out.stderr
    out = run_cluster("start", cluster_dir, "--bind", "0.0.0.0", "--advertise", "127.0.0.1")
    assert out.returncode == 1
    assert "loopback address but Redis is reached from other hosts" in out.stderr
    out = run_cluster("start", cluster_dir, "--advertise", unassigned_address())
    assert out.returncode == 1 and "not an address of this host" in out.stderr
    assert processes_of(worker_dir) == processes_of(cluster_dir) == []
