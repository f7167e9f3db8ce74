"""The queue on a real cluster (redis-server and pd daemons started here):
processes that can never run are refused at submission; processes that may
run later wait with a reason and a queue position and hold nobody up; EASY
backfill starts a process in idle slots only if it cannot delay the first
waiting process's reservation."""
import io
import json
import os
import signal
import subprocess
import sys

import pytest
import redis

import pcli
from broker.control import Control
from appcases import APPS_DIR
from conftest import ROOT, wait_for
from pcli.shell import Shell
from pcli.topscreen import Data, View, screen
from tinyapp import endless_app, ring_app, slow_app

RING = str(APPS_DIR / "ring_v2.xml")


def rings_in_regions(rings: int) -> dict:
    """rmap for ring_app(rings=N): ring r in region r."""
    return {f"d{r}_{i}": r for r in range(1, rings) for i in range(4)}


def wide_app(tag: str) -> tuple[str, dict]:
    """An application of two regions (two rings, one in each) and its rmap."""
    return ring_app(tag, rings=2), rings_in_regions(2)


def shell_output(line: str) -> str:
    out = io.StringIO()
    Shell(history=False, stdout=out, color=False, quiet=True).onecmd_plus_hooks(line)
    return out.getvalue()


def stop(cluster, name: str) -> None:
    """Stop a daemon the clean way: it unregisters its engine."""
    cluster.procs[name].send_signal(signal.SIGTERM)
    assert cluster.procs[name].wait(timeout=10) == 0


def state(pid: int) -> str:
    return pcli.info(pid)["state"]


def test_processes_that_can_never_run_are_refused_without_a_pid(cluster, tmp_path):
    cluster.start("e1", slots=2)
    cluster.start("e2", slots=1)
    app = ring_app("refused", rings=4)
    with pytest.raises(ValueError, match="rcon names engine e9, which is not known to the cluster"):
        pcli.run(app, rmap=rings_in_regions(2), rcon={1: "e9"})
    with pytest.raises(ValueError, match="4 regions on engines, but the cluster has 3 slots in all"):
        pcli.run(app, rmap=rings_in_regions(4))
    with pytest.raises(ValueError, match="rcon pins 3 regions on engine e1, which has 2 slots"):
        pcli.run(app, rmap=rings_in_regions(3), rcon={0: "e1", 1: "e1", 2: "e1"})
    r = pcli.api.control().r
    assert pcli.ps(all=True) == [] and r.get("pstack:pid") is None and r.keys("pstack:upload:*") == []

    (tmp_path / "app.xml").write_text(app)
    (tmp_path / "rmap.json").write_text(json.dumps(rings_in_regions(2)))
    (tmp_path / "rcon.json").write_text('{"1": "e9"}')
    done = subprocess.run([sys.executable, "-m", "pcli", "-c", f"run --rmap {tmp_path / 'rmap.json'} "
                           f"--rcon {tmp_path / 'rcon.json'} {tmp_path / 'app.xml'}"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 1
    assert "run: refused: rcon names engine e9, which is not known to the cluster" in done.stderr
    assert pcli.ps(all=True) == []


def test_a_process_that_cannot_run_now_waits_with_a_reason_and_blocks_nobody(cluster):
    cluster.start("e1")
    cluster.start("e2")
    stop(cluster, "e2")
    app, rmap = wide_app("pinned")
    pinned = pcli.run(app, rmap=rmap, rcon={1: "e2"}, async_=True)
    app, rmap = wide_app("wide")
    wide = pcli.run(app, rmap=rmap, async_=True)
    assert pcli.run(RING)["state"] == "finished"                   # behind both, and not held up

    rec, other = pcli.info(pinned.pid), pcli.info(wide.pid)
    assert (rec["state"], rec["position"], rec["reason"]) == ("waiting", 1, "waiting for engine e2 (not running)")
    assert (other["position"], other["reason"]) == (2, "waiting for 2 slots (running engines have 1)")
    assert rec["expected_start"] is None
    listed = {i["pid"]: i for i in json.loads(shell_output("ps --json"))}
    assert listed[pinned.pid]["position"] == 1 and listed[wide.pid]["reason"] == other["reason"]
    assert f"pid {pinned.pid}: #1 waiting for engine e2 (not running)" in shell_output("ps")
    shown = shell_output(f"info {pinned.pid}")
    assert "  position: 1\n" in shown and "reason: waiting for engine e2 (not running)\n" in shown
    frame = [text for text, _ in screen(Data(pcli.engines(), pcli.processes()), View(), 80, 24)]
    assert "      #2 waiting for 2 slots (running engines have 1)" in frame
    assert all(len(text) < 80 for text in frame)

    cluster.start("e2")
    assert pinned.result(timeout=60)["state"] == "finished"
    assert wide.result(timeout=60)["state"] == "finished"
    assert pcli.info(pinned.pid)["engines"][1] == "e2" and pcli.info(pinned.pid)["position"] is None


def test_backfill_runs_what_ends_before_the_reservation_and_holds_what_would_delay_it(cluster):
    cluster.start("e1", slots=2)
    blocker = pcli.run(endless_app("blocker"), timeout=60, async_=True)
    wait_for(lambda: state(blocker.pid) == "running")
    app, rmap = wide_app("reserved")
    wide = pcli.run(app, rmap=rmap, async_=True)                    # needs both slots: gets the reservation
    rec = pcli.info(wide.pid)
    assert (rec["state"], rec["position"]) == ("waiting", 1)
    assert rec["reason"] == "waiting for 2 slots (1 free); first in line"
    assert rec["expected_start"] == pytest.approx(pcli.info(blocker.pid)["started"] + 60, abs=0.01)

    short = pcli.run(slow_app("short", 0.2), timeout=30, async_=True)     # ends before the shadow time
    assert short.result(timeout=60)["state"] == "finished"
    assert state(wide.pid) == "waiting"

    late = pcli.run(slow_app("late", 0.2), timeout=120, async_=True)      # would end after it
    unlimited = pcli.run(slow_app("unlimited", 0.2), async_=True)         # no known end
    for position, f in ((2, late), (3, unlimited)):
        rec = pcli.info(f.pid)
        assert (rec["state"], rec["position"]) == ("waiting", position)
        assert rec["reason"] == f"waiting: starting now would delay process {wide.pid} (first in line)"

    assert pcli.kill(blocker.pid)                                   # the slots free: the reservation starts
    assert wide.result(timeout=60)["state"] == "finished"
    assert [f.result(timeout=60)["state"] for f in (late, unlimited)] == ["finished", "finished"]
    wide_rec = pcli.info(wide.pid)
    assert wide_rec["started"] >= pcli.info(blocker.pid)["ended"]
    assert all(pcli.info(f.pid)["started"] >= wide_rec["started"] for f in (late, unlimited))


def test_processes_without_a_time_limit_backfill_only_slots_the_reservation_leaves_spare(cluster):
    cluster.start("e1", slots=2)
    cluster.start("e2", slots=1)
    blocker = pcli.run(endless_app("timed_out"), rcon={0: "e1"}, timeout=6, async_=True)
    wait_for(lambda: state(blocker.pid) == "running")
    app, rmap = wide_app("both_on_e1")
    wide = pcli.run(app, rmap=rmap, rcon={0: "e1", 1: "e1"}, async_=True)
    assert pcli.info(wide.pid)["reason"] == "waiting for 2 slots on engine e1 (1 free); first in line"
    held = pcli.run(slow_app("held", 0.2), rcon={0: "e1"}, async_=True)     # e1's free slot: wide needs it
    assert pcli.info(held.pid)["reason"] == f"waiting: starting now would delay process {wide.pid} (first in line)"
    spare = pcli.run(slow_app("spare", 0.2), async_=True)                    # e2: wide never needs it
    assert pcli.info(spare.pid)["engines"] == {0: "e2"}
    assert spare.result(timeout=60)["state"] == "finished"

    assert "timed out" in blocker.result(timeout=60)["reason"]                # its time limit frees e1
    assert wide.result(timeout=60)["state"] == "finished"
    assert held.result(timeout=60)["state"] == "finished"
    assert pcli.info(wide.pid)["engines"] == {0: "e1", 1: "e1"}
    assert pcli.info(held.pid)["started"] >= pcli.info(wide.pid)["started"]


def test_a_long_queue_costs_each_pass_the_same_and_what_cannot_run_hides_nobody(cluster, redis_server):
    """400 waiting processes, the first 150 pinned to an engine that is down:
    a pass passes over those, gives the first that may run the reservation,
    tries 100 and leaves the rest with a reason saying so; the submissions'
    scripts take as long at the end of the queue as at its start."""
    admin = redis.Redis.from_url(redis_server.url)
    cluster.start("e1", slots=1)
    cluster.start("e2", slots=1)
    cluster.procs["e2"].send_signal(signal.SIGTERM)                # known, not running
    wait_for(lambda: "e2" not in {e["name"] for e in pcli.engines() if e["alive"]})
    blocker = pcli.run(endless_app("long_blocker"), async_=True)
    wait_for(lambda: state(blocker.pid) == "running")
    admin.config_set("slowlog-log-slower-than", 0)
    admin.config_set("slowlog-max-len", 100_000)
    pinned = [pcli.run(RING, rcon={0: "e2"}, async_=True) for _ in range(150)]
    ordinary = [pcli.run(RING, async_=True) for _ in range(250)]
    sha = Control(admin).s["submit"].sha.encode()
    submits = [e["duration"] / 1000 for e in reversed(admin.slowlog_get(100_000))     # oldest first
               if e["command"].split()[:2] == [b"EVALSHA", sha]]
    admin.config_set("slowlog-log-slower-than", 10_000)
    assert pcli.info(pinned[-1].pid)["reason"] == "waiting for engine e2 (not running)"
    first, last = pcli.info(ordinary[0].pid), pcli.info(ordinary[-1].pid)
    assert (first["position"], first["reason"]) == (151, "waiting for 1 slot (0 free); first in line")
    assert (last["position"], last["reason"]) == (400, "waiting: the scheduler looks at the first 100 in the queue")
    assert pcli.info(ordinary[150].pid)["reason"] == last["reason"]     # 101st that may run: not looked at
    late = sorted(submits[-50:])
    assert late[25] < 10, late                         # ms, the median: a pass over 250 of the 400 queued
    pcli.kill(blocker.pid)
    assert ordinary[0].result(timeout=60)["state"] == "finished"
