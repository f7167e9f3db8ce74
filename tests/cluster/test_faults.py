"""Faults a shared service must hold under: stopped workers and daemons,
forged and stale data-plane frames, stale jobs and writes, and Redis
crashing under running and waiting processes.  Frames are forged over
plain TCP (PSTACK_CURVE=off): what a process's token and sequence numbers
hold behind CURVE, which refuses such senders first (test_curve.py,
test_dataplane_auth.py).  Each records its row of the
fault table (docs/reliability.md)."""
from __future__ import annotations

import signal
import time

import psutil
import pytest
import zmq

import pcli
from appcases import APPS_DIR
from broker import keys, wire
from broker.control import Control, Job, connect
from conftest import gone, wait_for
from faults import RUN, record
from tinyapp import forever_app, ring_app, slow_app

RING = str(APPS_DIR / "ring_v2.xml")


@pytest.fixture
def two_pds(cluster):
    cluster.start("left", slots=2)
    cluster.start("right", slots=2)
    return cluster


@pytest.fixture
def plain_pds(cluster):
    """left and right with plain TCP on the data plane, where a forger's frames arrive."""
    cluster.start("left", slots=2, env={"PSTACK_CURVE": "off"})
    cluster.start("right", slots=2, env={"PSTACK_CURVE": "off"})
    return cluster


def split_forever(tag: str, rings: int = 1):
    """A process that never ends by itself, region 0 on `left`, 1 on `right`."""
    if rings == 1:
        return pcli.run(forever_app(tag), rmap={"d2": 1, "d3": 1}, rcon={0: "left", 1: "right"}, async_=True)
    app = ring_app(tag, rings=2, receive="deviceState->n = 0;")     # two rings, no message between regions
    return pcli.run(app, rmap={f"d1_{i}": 1 for i in range(4)}, rcon={0: "left", 1: "right"}, async_=True)


def running(cluster, future, *engines: str) -> None:
    wait_for(lambda: pcli.info(future.pid)["state"] == "running" and all(cluster.workers(e) for e in engines))


def test_stopped_region_worker_fails_its_process_and_the_others_stop(two_pds):
    future = split_forever("sigstop")
    running(two_pds, future, "left", "right")
    wait_for(lambda: pcli.info(future.pid)["delivered"] > 0)
    victim, others = two_pds.workers("right")[0], two_pds.workers("left")
    start = time.monotonic()
    victim.suspend()                                       # SIGSTOP
    res = future.result(timeout=20)
    seconds = time.monotonic() - start
    assert res["state"] == "failed"
    assert "region 1 on engine right" in res["reason"] and "stopped responding" in res["reason"]
    assert seconds < 8
    ended = time.monotonic()
    wait_for(lambda: gone(others), timeout=1.0)            # the other regions stop within a second
    wait_for(lambda: gone([victim]), timeout=5)
    record("a region worker stopped (SIGSTOP)", f"process failed: {res['reason']}; other regions stopped "
           f"{time.monotonic() - ended:.1f} s later", seconds, lost=RUN)


def test_worker_of_a_stopped_daemon_stops_itself(cluster):
    daemon = cluster.start("e1")
    future = pcli.run(forever_app("orphaned"), async_=True)
    running(cluster, future, "e1")
    worker = cluster.workers("e1")[0]
    start = time.monotonic()
    daemon.send_signal(signal.SIGSTOP)
    try:
        res = future.result(timeout=20)
        failed_after = time.monotonic() - start
        assert res["state"] == "failed" and "engine e1" in res["reason"] and "stopped responding" in res["reason"]
        wait_for(lambda: gone([worker]), timeout=15)        # fenced: its daemon no longer holds the engine
        stopped_after = time.monotonic() - start
    finally:
        daemon.send_signal(signal.SIGCONT)
    wait_for(lambda: any(e["name"] == "e1" and e["alive"] for e in pcli.engines()), timeout=15)
    assert pcli.run(RING)["metrics"]["Delivered messages"] == 40
    record("a daemon stopped (SIGSTOP) while its worker runs",
           f"process failed: {res['reason']}; the worker ended itself {stopped_after:.1f} s after the stop; "
           "the daemon, continued, registered again and serves", failed_after, lost=RUN)


def forge(address: str, *frames: bytes) -> None:
    with zmq.Context() as ctx, ctx.socket(zmq.PUSH) as s:
        s.connect(address)
        for f in frames:
            s.send(f)
        s.close(linger=2000)


def endpoint(pid: int, region: int) -> str:
    ctl = pcli.api.control()
    key = keys.proc_endpoints(ctl.owner(pid), pid)
    wait_for(lambda: ctl.r.hlen(key) == 2)
    return ctl.r.hget(key, region).decode()


def past_first_probe(future) -> None:
    """Both regions have run (their heartbeats report deliveries), so region
    0's first PROBE (seq 1) reached region 1 long ago: seq 2 is the next
    frame region 1 expects from region 0.  (A process only running may not
    have sent it yet: then a forged seq 2 is out of order.)"""
    ctl = pcli.api.control()
    wait_for(lambda: all(int(ctl.r.hget(keys.proc(future.pid), f"delivered:{q}") or 0) > 0 for q in (0, 1)))


def test_frames_of_another_incarnation_are_dropped_and_counted(plain_pds):
    future = split_forever("forged")
    running(plain_pds, future, "left", "right")
    stop = {"status": "exit", "code": 0}
    forge(endpoint(future.pid, 1),
          wire.pack(wire.STOP, future.pid, "0" * 16, 0, 2, stop),              # plausible pid and seq
          wire.pack(wire.MSG, future.pid, "stale-token", 0, 2, b"\0" * 16),
          wire.pack(wire.STOP, future.pid + 1000, future.token, 0, 2, stop))   # another process
    wait_for(lambda: pcli.info(future.pid)["dropped"] == 3, timeout=5)
    time.sleep(1.0)
    rec = pcli.info(future.pid)
    assert rec["state"] == "running" and rec["dropped"] == 3
    delivered = rec["delivered"]
    wait_for(lambda: pcli.info(future.pid)["delivered"] > delivered)      # still working
    assert pcli.kill(future.pid)
    record("forged MSG and STOP frames with a plausible pid and seq, but another token or pid (PSTACK_CURVE=off)",
           "dropped and counted (info: dropped 3); the process runs on", None)


def test_forged_stop_with_the_token_fails_the_process_instead_of_hanging(plain_pds):
    future = split_forever("forged_stop", rings=2)
    running(plain_pds, future, "left", "right")
    past_first_probe(future)
    # region 1 has had HELLO (seq 0) and the first PROBE (seq 1) from region 0,
    # and, never idle, no other frame: a STOP with seq 2 is taken as real
    start = time.monotonic()
    forge(endpoint(future.pid, 1), wire.pack(wire.STOP, future.pid, future.token, 0, 2,
                                             {"status": "idle", "code": 0}))
    res = future.result(timeout=20)
    seconds = time.monotonic() - start
    assert res["state"] == "failed" and "without this one being stopped" in res["reason"]
    assert seconds < 10
    record("a forged STOP frame with the process's token and the right seq (PSTACK_CURVE=off)",
           f"the process fails: {res['reason']}", seconds, lost=RUN)


def test_out_of_sequence_frame_fails_the_process_with_a_reason(plain_pds):
    future = split_forever("out_of_seq")
    running(plain_pds, future, "left", "right")
    start = time.monotonic()
    forge(endpoint(future.pid, 1), wire.pack(wire.PROBE, future.pid, future.token, 0, 99999, {"wave": 1}))
    res = future.result(timeout=20)
    assert res["state"] == "failed" and "out of order" in res["reason"]
    record("a frame with the process's token out of sequence (PSTACK_CURVE=off)", f"the process fails: {res['reason']}",
           time.monotonic() - start, lost=RUN)


def test_malformed_records_fail_the_process_with_a_reason(plain_pds):
    future = split_forever("garbage", rings=2)
    running(plain_pds, future, "left", "right")
    past_first_probe(future)
    start = time.monotonic()
    forge(endpoint(future.pid, 1), wire.pack(wire.MSG, future.pid, future.token, 0, 2, b"\x01\x02\x03"))
    res = future.result(timeout=20)
    assert res["state"] == "failed" and "bad records from region 0" in res["reason"]
    record("a MSG frame of garbage records with the process's token and the right seq (PSTACK_CURVE=off)",
           f"the process fails: {res['reason']}", time.monotonic() - start, lost=RUN)


def test_stale_jobs_and_writes_are_refused_and_counted(cluster):
    cluster.start("e1", slots=2)                           # a free slot: the daemon takes jobs
    future = pcli.run(forever_app("fenced"), async_=True)
    running(cluster, future, "e1")
    wait_for(lambda: pcli.info(future.pid)["devices"] == 4)      # the real worker has loaded it
    ctl = Control(connect())
    stale = Job(future.pid, 0, "0123456789abcdef", "e1")
    ctl.r.rpush(keys.engine_jobs("e1"), f"{stale.pid} {stale.region} {stale.token}")    # a job left from before
    wait_for(lambda: ctl.r.hget(keys.STATS, "stale_jobs") == b"1")
    assert not ctl.finish_region(stale, "finished", "", {"states": {}, "metrics": {}})
    assert not ctl.proc_set(stale, devices=999)
    assert ctl.region_beat(stale, "nobody")[0] == "stale"
    assert int(ctl.r.hget(keys.STATS, "stale_writes")) == 3
    rec = pcli.info(future.pid)
    assert rec["state"] == "running" and rec["devices"] == 4 and len(cluster.workers("e1")) == 1
    assert ctl.r.hlen(keys.proc_results(ctl.owner(future.pid), future.pid)) == 0
    pcli.kill(future.pid)
    record("a stale job (another incarnation) and a stale worker's writes",
           "the daemon does not run the job; result, record and heartbeat writes refused; all counted "
           "(pstack:stats)", None)


def test_a_job_taken_but_not_claimed_is_not_lost(cluster):
    daemon = cluster.start("e1")
    ctl = pcli.api.control()
    daemon.send_signal(signal.SIGSTOP)                     # briefly: less than a heartbeat's TTL
    time.sleep(0.5)                                        # its blocking BLMOVE (0.2 s) has lapsed in Redis
    try:
        future = pcli.run(RING, async_=True)
        # as if the daemon took the job and lost Redis before its claim
        assert ctl.r.lmove(keys.engine_jobs("e1"), keys.engine_taken("e1"), "LEFT", "RIGHT")
    finally:
        daemon.send_signal(signal.SIGCONT)
    res = future.result(timeout=30)
    assert res["state"] == "finished" and res["metrics"]["Delivered messages"] == 40
    assert ctl.r.llen(keys.engine_taken("e1")) == 0
    record("a daemon loses Redis between taking a job and claiming it",
           "the job waits in the engine's taken list and is claimed and run when the daemon is back", None)


def test_redis_crash_keeps_running_and_waiting_processes_and_pids(cluster, redis_server):
    cluster.start("e1", slots=1)
    first = pcli.run(slow_app("through_crash", 3.0), async_=True)
    waiting = pcli.run(RING, async_=True)
    running(cluster, first, "e1")
    assert pcli.info(waiting.pid)["state"] == "waiting"
    start = time.monotonic()
    redis_server.stop()                                    # SIGKILL
    time.sleep(0.5)
    redis_server.start()
    done = first.result(timeout=30)                        # the client rode out the outage
    assert done["state"] == "finished" and done["status"] == "idle" and len(done["states"]) == 4
    res = waiting.result(timeout=30)
    assert res["state"] == "finished" and res["metrics"]["Delivered messages"] == 40
    seconds = time.monotonic() - start
    after = pcli.run(RING, async_=True)
    assert after.pid == waiting.pid + 1                    # no pid reused
    assert after.result(timeout=30)["state"] == "finished"
    assert [p["pid"] for p in pcli.processes(all=True)] == [first.pid, waiting.pid, after.pid]
    record("Redis SIGKILLed (restarted from its AOF) under a running and a waiting process",
           "the running process carries on and finishes; the waiting one runs; the next pid is new",
           seconds)


def test_redis_down_longer_than_a_heartbeat_then_back(cluster, redis_server):
    cluster.start("e1", slots=1)
    future = pcli.run(forever_app("long_outage"), async_=True)
    running(cluster, future, "e1")
    worker = cluster.workers("e1")[0]
    redis_server.stop()
    time.sleep(4.0)                                        # past every heartbeat's TTL
    redis_server.start()
    time.sleep(2.0)                                        # within the reap grace: heartbeats resume
    assert pcli.info(future.pid)["state"] == "running"
    assert worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE
    assert pcli.kill(future.pid)
    assert pcli.block(future)["state"] == "killed"
    record("Redis down for 4 s (longer than a heartbeat's TTL), then back",
           "running processes carry on: nobody is reaped in the grace period after Redis starts", None)


def test_client_reads_no_partial_record(cluster):
    cluster.start("e1")
    ctl = pcli.api.control()
    pid = pcli.run(RING, async_=True).pid
    ctl.r.hset(keys.proc(pid + 1), "delivered:0", 5)       # what a stale writer once left behind
    ctl.r.zadd(keys.PROCS, {pid + 1: pid + 1})
    assert [p["pid"] for p in pcli.processes(all=True)] == [pid]
    with pytest.raises(ValueError, match="no process"):
        pcli.info(pid + 1)
    assert not ctl.proc_set(Job(pid + 2, 0, "0" * 16, "e1"), devices=4)   # a stale worker cannot make one now
    assert not ctl.r.exists(keys.proc(pid + 2))
