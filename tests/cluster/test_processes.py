"""Processes on a real cluster: a redis-server and pd daemons started here."""
import gzip
import os
import signal
import subprocess
import sys
import time

import pytest

import pcli
from appcases import APPS_DIR
from conftest import ROOT, gone, kill_tree, wait_for
from faults import RUN, record
from psim import psim
from tinyapp import endless_app, ring_app, slow_app

RING = str(APPS_DIR / "ring_v2.xml")
TIMINGS = ("Load time (s)", "Compile time (s)", "Run time (s)")


def same_answer(a: dict, b: dict) -> bool:
    strip = lambda m: {k: v for k, v in m.items() if k not in TIMINGS}      # noqa: E731
    return a["states"] == b["states"] and strip(a["metrics"]) == strip(b["metrics"]) and a["status"] == b["status"]


def test_run_block_ps_info_result(cluster):
    cluster.start("e1")
    res = pcli.run(RING)
    assert res["metrics"]["Delivered messages"] == 40 and res["state"] == "finished"
    future = pcli.run(slow_app("async", 0.5), async_=True)
    assert future.pid in pcli.ps()
    assert pcli.result(future.pid) is None
    done = pcli.block(future)
    assert done["status"] == "idle"
    assert future.pid not in pcli.ps()
    rec = pcli.info(future.pid)
    assert rec["state"] == "finished" and rec["owner"] and rec["engines"] == {0: "e1"}
    assert rec["graph_type"] == "tiny_async" and rec["devices"] == 4 and rec["edges"] == 4
    assert pcli.result(future.pid)["states"] == done["states"]
    old = pcli.run(RING, **{"async": True})          # the seed's spelling
    assert isinstance(old, pcli.Future) and pcli.block([old])[0]["metrics"]["Exit code"] == 0


@pytest.mark.parametrize("app", ["ring_v2", "sum_tree_v3", "edges_v3", "barrier_v3", "assert_v3", "heat_v4"])
def test_cluster_result_is_psims_result(cluster, app):
    cluster.start("e1")
    path = str(APPS_DIR / f"{app}.xml")
    assert same_answer(pcli.run(path), psim(path))


def test_three_processes_on_one_slot_run_in_order(cluster):
    cluster.start("e1", slots=1)
    futures = [pcli.run(slow_app(f"queue{i}", 0.4), async_=True) for i in range(3)]
    assert [pcli.info(f.pid)["state"] for f in futures][1:] == ["waiting", "waiting"]
    assert all(r["status"] == "idle" for r in pcli.block(futures))
    recs = [pcli.info(f.pid) for f in futures]
    for before, after in zip(recs, recs[1:]):
        assert before["ended"] <= after["started"]


def test_process_waits_for_engines_that_are_not_there_yet(cluster):
    cluster.start("e1")
    app = ring_app("gang", rings=2)
    rmap = {f"d1_{i}": 1 for i in range(4)}                 # ring 1 in region 1
    with pytest.raises(ValueError, match="engine e2, which is not known"):     # never seen: refused
        pcli.run(app, rmap=rmap, rcon={1: "e2"})
    cluster.start("e2")
    cluster.procs["e2"].send_signal(signal.SIGTERM)         # known, stopped: may come back
    assert cluster.procs["e2"].wait(timeout=10) == 0
    future = pcli.run(app, rmap=rmap, rcon={1: "e2"}, async_=True)
    rec = pcli.info(future.pid)
    assert (rec["state"], rec["reason"], rec["position"]) == ("waiting", "waiting for engine e2 (not running)", 1)
    assert future.pid in pcli.ps()
    cluster.start("e2")
    res = future.result(timeout=30)
    assert res["state"] == "finished"
    assert pcli.info(future.pid)["engines"] == {0: "e1", 1: "e2"}
    assert len(res["states"]) == 8


def test_killed_daemon_fails_its_process_within_ten_seconds(cluster):
    cluster.start("e1")
    future = pcli.run(endless_app("orphan"), async_=True)
    wait_for(lambda: cluster.workers("e1"))
    workers = cluster.workers("e1")
    res, seconds = cluster.kill_during("e1", future, timeout=15)
    assert seconds < 10
    assert res["state"] == "failed" and "stopped responding" in res["reason"]
    wait_for(lambda: gone(workers), timeout=5)
    record("a daemon SIGKILLed while it runs a process", f"the process fails: {res['reason']}; "
           "its worker dies with it", seconds, lost=RUN)


def test_daemon_reregisters_after_redis_restarts(cluster, redis_server):
    cluster.start("e1")
    redis_server.stop()
    time.sleep(1.0)
    redis_server.start()
    wait_for(lambda: any(e["name"] == "e1" for e in pcli.engines()), timeout=15)
    assert pcli.run(RING)["metrics"]["Delivered messages"] == 40


def test_crashing_and_endless_handlers_leave_the_daemon_serving(cluster):
    cluster.start("e1")
    crash = pcli.run(ring_app("segv", receive="volatile int* p = 0; *p = 1;"))
    assert crash["state"] == "failed" and "Segmentation fault" in crash["reason"]
    record("a handler that segfaults", "the process fails with the device and handler; the daemon serves on",
           None, lost=RUN)
    endless = pcli.run(endless_app("loop"), async_=True)
    wait_for(lambda: pcli.info(endless.pid)["state"] == "running" and cluster.workers("e1"))
    t0 = time.monotonic()
    assert pcli.kill(endless.pid)
    wait_for(lambda: not cluster.workers("e1"), timeout=5)
    assert time.monotonic() - t0 < 1.0
    assert endless.result(timeout=10)["state"] == "killed"
    assert pcli.run(RING)["metrics"]["Exit code"] == 0


def test_worker_killed_outside_psim_fails_with_a_reason(cluster):
    cluster.start("e1")
    future = pcli.run(endless_app("hardkill"), async_=True)
    worker = wait_for(lambda: cluster.workers("e1"))[0]
    wait_for(lambda: pcli.info(future.pid)["state"] == "running")
    worker.send_signal(signal.SIGKILL)
    res = future.result(timeout=10)
    assert res["state"] == "failed" and "region worker died (signal SIGKILL)" in res["reason"]
    record("a region worker SIGKILLed", f"the process fails: {res['reason']}", None, lost=RUN)


def test_sigterm_fails_running_processes_with_daemon_stopped(cluster):
    cluster.start("e1")
    future = pcli.run(endless_app("term"), async_=True)
    wait_for(lambda: cluster.workers("e1"))
    cluster.procs["e1"].send_signal(signal.SIGTERM)
    assert cluster.procs["e1"].wait(timeout=10) == 0
    res = future.result(timeout=10)
    assert res["state"] == "failed" and res["reason"] == "daemon stopped"
    assert pcli.engines() == []


def test_other_users_processes_need_force(cluster, monkeypatch):
    cluster.start("e1")
    monkeypatch.setenv("PSTACK_USER", "alice")
    future = pcli.run(endless_app("alice"), async_=True)
    monkeypatch.setenv("PSTACK_USER", "bob")
    assert pcli.info(future.pid)["owner"] == "alice"
    with pytest.raises(PermissionError):
        pcli.kill(future.pid)
    assert pcli.kill(future.pid, force=True)
    assert pcli.block(future)["reason"] == "killed by bob"


def test_every_submitted_process_ends_with_a_result_or_reason(cluster):
    cluster.start("e1", slots=2)
    apps = [RING, str(APPS_DIR / "assert_v3.xml"), str(APPS_DIR / "bad" / "bad_compile.xml"),
            ring_app("crash", receive="volatile int* p = 0; *p = 1;"), endless_app("lost"),
            str(APPS_DIR / "sum_tree_v3.xml")]
    futures = [pcli.run(app, async_=True) for app in apps]
    pcli.kill(futures[4].pid)
    results = [f.result(timeout=60) for f in futures]
    assert [r["state"] for r in results] == ["finished", "failed", "failed", "failed", "killed", "finished"]
    assert results[1]["status"] == "failed" and "assertion" in results[1]["error"]
    assert "handlers do not compile" in results[2]["reason"]
    assert all(r["state"] == "finished" or r["reason"] for r in results)


def test_unknown_options_are_refused_at_submission(cluster):
    with pytest.raises(ValueError, match="unknown psim options: colour"):
        pcli.run(RING, colour="blue")


def test_verbose_run_prints_log_lines_with_engine_and_region(cluster, capsys):
    cluster.start("e1")
    pcli.run(RING, verbose=True)
    out = capsys.readouterr().out.splitlines()
    assert "[e1:0] n0: counter = 1" in out
    assert len([line for line in out if "counter =" in line]) == 40


def test_daemon_survives_a_malformed_job_entry(cluster):
    cluster.start("e1")
    pcli.api.control().r.rpush("pstack:engine:e1:jobs", "not a job")
    time.sleep(0.5)
    assert cluster.procs["e1"].poll() is None
    assert pcli.run(RING)["metrics"]["Exit code"] == 0


def test_daemon_takes_the_seeds_host_and_port_options(redis_server, monkeypatch):
    monkeypatch.setenv("PSTACK_REDIS", redis_server.url)
    env = {k: v for k, v in os.environ.items() if k != "PSTACK_REDIS"}
    pd = subprocess.Popen([sys.executable, "-m", "pd", "-h", "127.0.0.1", "-p", str(redis_server.port),
                           "-n", "seedish", "-w", "3", "-q"], cwd=ROOT, env=env)
    try:
        wait_for(lambda: [e for e in pcli.engines() if e["name"] == "seedish"])
        assert [e["slots"] for e in pcli.engines()] == [3]
    finally:
        kill_tree(pd)


def test_gzipped_application_runs_on_the_cluster(cluster, tmp_path):
    cluster.start("e1")
    gz = tmp_path / "ring.xml.gz"
    gz.write_bytes(gzip.compress((APPS_DIR / "ring_v2.xml").read_bytes()))
    res = pcli.run(str(gz))
    assert res["state"] == "finished" and res["metrics"]["Delivered messages"] == 40
    assert pcli.info(max(pcli.ps(all=True)))["app"] == "ring.xml.gz"


def test_a_file_that_is_not_xml_fails_with_the_parsers_reason(cluster):
    cluster.start("e1")
    res = pcli.run(str(APPS_DIR / "assert_v3.py"))        # a checker file, not its application
    assert res["state"] == "failed" and "malformed XML" in res["reason"], res["reason"]
    assert "a bug in pstack" not in res["reason"]
    assert pcli.run(RING)["metrics"]["Exit code"] == 0
