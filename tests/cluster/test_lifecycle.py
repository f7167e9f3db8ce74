"""A process's life as a user sees it: its phase, its pid before its
upload, its counts, results that scale, ps filters, kill of several pids,
purge and expiry, Ctrl-C on a foreground run."""
import json
import os
import signal
import subprocess
import sys
import uuid

import pytest
import redis

import pcli
from appcases import APPS_DIR
from broker import acl
from conftest import ROOT, Scheduler, wait_for
from psim.errors import BadInput
from test_ownership import as_user
from test_shell_promises import tmux_pcli
from tinyapp import forever_app, ring_app

RING = str(APPS_DIR / "ring_v2.xml")            # 4 devices, 40 messages delivered


def write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def phase(pid: int) -> str:
    return pcli.info(pid)["phase"]


def test_phases_from_submission_to_the_end(cluster):
    cluster.start("e1", slots=2)
    seen = []
    future = pcli.run(forever_app("phased"), regions=2, async_=True,
                      on_pid=lambda pid: seen.append((pid, pcli.info(pid))))
    (pid, early), = seen
    assert pid == future.pid and early["state"] == "waiting" and early["phase"] == "partitioning"
    wait_for(lambda: phase(pid) == "running")                 # both regions loaded and running
    waiting = pcli.run(RING, async_=True)                     # no slot left: queued
    assert phase(waiting.pid) == "queued"
    rows = {r["pid"]: r["phase"] for r in pcli.processes()}
    assert rows == {pid: "running", waiting.pid: "queued"}
    pcli.kill(pid)
    assert pcli.block(waiting)["state"] == "finished"
    assert phase(pid) == "killed" and phase(waiting.pid) == "finished"


def test_run_async_prints_the_pid_before_the_upload(cluster, tmp_path):
    cluster.start("e1", slots=2)
    # 200k devices, a tag of its own (no partition cached): the client partitions and uploads it for
    # about 0.2 s after it prints the pid, which is read and looked up in a few ms
    app = write(tmp_path / "ring.xml", ring_app(uuid.uuid4().hex[:12], n=200_000))
    proc = subprocess.Popen([sys.executable, "-m", "pcli", "-c", f"run --async --regions 2 {app}"],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        pid = int(proc.stdout.readline())
        assert phase(pid) in ("partitioning", "uploading")
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.stdout.close()
    assert pcli.block(pid)["state"] == "finished" and pcli.info(pid)["devices"] == 200_000


def test_a_submission_whose_client_goes_silent_fails_and_blocks_nobody(cluster):
    cluster.start("e1")
    ctl = pcli.api.control()
    pid, _ = ctl.create(pcli.api.user(), 1, {}, {"app_name": "silent.xml"}, "uploading", lease=3)
    assert phase(pid) == "uploading" and pid in pcli.ps()
    assert pcli.run(RING)["state"] == "finished"              # not in the queue: it holds nobody up
    wait_for(lambda: pcli.info(pid)["state"] == "failed", timeout=10)
    assert "its client stopped before the submission was complete" in pcli.info(pid)["reason"]
    with pytest.raises(ValueError, match=f"process {pid} failed before its submission was complete"):
        ctl.queue(pcli.api.user(), pid, b"<late/>")


def test_a_process_killed_while_submitted_is_not_queued(cluster):
    cluster.start("e1")
    ctl, me = pcli.api.control(), pcli.api.user()
    pid, _ = ctl.create(me, 1, {}, {}, "partitioning")
    assert pcli.kill(pid)
    with pytest.raises(ValueError, match=f"process {pid} killed before its submission was complete"):
        ctl.queue(me, pid, open(RING, "rb").read())
    assert pcli.info(pid)["state"] == "killed" and not pcli.ps()


def test_a_submission_that_fails_in_the_client_ends_its_process(cluster, tmp_path):
    cluster.start("e1", slots=2)
    seen = []
    with pytest.raises(BadInput):
        pcli.run(write(tmp_path / "bad.xml", "<Graphs>not an application"), regions=2, on_pid=seen.append)
    rec = pcli.info(seen[0])
    assert rec["state"] == "killed" and "its submission failed" in rec["reason"]


def test_delivered_of_a_split_process_is_its_results(cluster):
    cluster.start("e1", slots=2)
    res = pcli.run(RING, regions=2)
    pid = pcli.ps(all=True)[-1]
    assert res["metrics"]["Delivered messages"] == 40
    assert pcli.info(pid)["delivered"] == 40
    assert [r["delivered"] for r in pcli.processes(all=True)] == [40]


def test_result_summarises_unless_asked_for_every_state(shell, tmp_path):
    app = write(tmp_path / "ring30.xml", ring_app("thirty", n=30))
    assert "state finished" in shell.do(f"run {app}")
    lines = shell.do("result 1").splitlines()
    states = [ln for ln in lines if ln.startswith("  d")]
    assert len(states) == 10 and lines[-1] == "  ... 20 more devices: result 1 --states, or result 1 --json"
    assert len([ln for ln in shell.do("result 1 --states").splitlines() if ln.startswith("  d")]) == 30
    whole = json.loads(shell.do("result 1 --json"))
    assert len(whole["states"]) == 30 and whole["metrics"]["Delivered messages"] == 90
    assert "more devices" not in shell.do(f"result {shell.do(f'run --async {RING}').strip()}")  # 4: all shown


def test_ps_filters_by_user_and_state(shell, tmp_path, monkeypatch):
    forever = write(tmp_path / "f.xml", forever_app("filtered"))
    monkeypatch.setenv("PSTACK_USER", "bob")
    bobs = int(shell.do(f"run --async {forever}"))
    monkeypatch.setenv("PSTACK_USER", "alice")
    shell.do(f"run {RING}")
    pids = lambda line: [r["pid"] for r in json.loads(shell.do(line))]        # noqa: E731
    assert pids("ps -a --user bob --json") == [bobs]
    assert pids("ps -a --user me --json") == [2]
    assert pids("ps --json") == [bobs]                                        # ended: with -a or --state
    assert pids("ps --state finished --json") == [2]
    assert pids("ps --state running,finished --json") == pids("ps --state running --state finished --json") \
        == [bobs, 2]
    shell.do("ps --state sleeping")
    assert shell.failed
    pcli.kill(bobs, force=True)


def test_kill_several_and_the_shells_flag(shell, tmp_path, monkeypatch, capsys):
    forever = write(tmp_path / "f.xml", forever_app("killmany"))
    monkeypatch.setenv("PSTACK_USER", "bob")
    theirs = int(shell.do(f"run --async {forever}"))
    monkeypatch.setenv("PSTACK_USER", "alice")
    mine = [int(shell.do(f"run --async {forever}")) for _ in range(2)]
    capsys.readouterr()
    shell.do(f"kill {mine[0]} 99 {theirs} {mine[1]}")
    errors = capsys.readouterr().err
    assert shell.failed and "kill: no process 99" in errors
    assert f"process {theirs} belongs to bob" in errors and "kill -f" in errors and "force=True" not in errors
    assert [pcli.info(p)["state"] for p in mine] == ["killed", "killed"]      # each was tried
    assert pcli.info(theirs)["state"] != "killed"
    shell.do(f"kill -f {theirs}")
    assert not shell.failed and pcli.info(theirs)["state"] == "killed"


def test_purge_own_given_and_everyones(shell, tmp_path, monkeypatch, redis_server, capsys):
    forever = write(tmp_path / "f.xml", forever_app("purged"))
    monkeypatch.setenv("PSTACK_USER", "bob")
    shell.do(f"run {RING}")                                                   # 1, bob's
    monkeypatch.setenv("PSTACK_USER", "alice")
    shell.do(f"run {RING}")                                                   # 2
    shell.do(f"run {RING}")                                                   # 3
    running = int(shell.do(f"run --async {forever}"))                         # 4
    assert shell.do("purge --older-than 1h").strip() == "purged 0 processes"
    shell.do(f"purge 3 {running} 1 77")
    assert shell.failed and pcli.ps(all=True) == [1, 2, running]
    assert shell.do("purge").strip() == "purged 1 process"                    # alice's ended one: 2
    assert pcli.ps(all=True) == [1, running]
    capsys.readouterr()
    shell.do("purge --all")
    assert shell.failed and pcli.ps(all=True) == [1, running]                 # everyone's: -f on an open cluster
    assert "(on an open cluster: purge --all -f)" in capsys.readouterr().err
    with pytest.raises(PermissionError, match="force=True"):
        pcli.purge(all=True)
    pcli.kill(running)
    assert shell.do("purge --all -f").strip() == "purged 2 processes"
    assert pcli.ps(all=True) == [] and shell.do("ps -a").splitlines()[1:] == []
    left = [k for k in redis.Redis.from_url(redis_server.url).keys("pstack:*")
            if b":p:" in k or b"pstack:proc:" in k]
    assert left == []                                                         # nothing of theirs is left


def test_purge_and_submission_on_a_secured_cluster(secured, monkeypatch):
    as_user(monkeypatch, secured.urls, "alice")
    alices = pcli.run(ring_app("alice"), async_=True)
    as_user(monkeypatch, secured.urls, "bob")
    bobs = pcli.run(ring_app("bob"), async_=True)
    pcli.block(bobs)
    made, _ = pcli.api.control().create("bob", 1, {}, {}, "uploading")
    as_user(monkeypatch, secured.urls, "alice")
    pcli.block(alices)
    with pytest.raises(ValueError, match=f"process {made} belongs to bob"):
        pcli.api.control().queue("alice", made, b"<not/>")
    assert pcli.purge([bobs.pid])["refused"] == {bobs.pid: "not yours (its owner or an admin may purge it)"}
    with pytest.raises(PermissionError, match="only an admin"):
        pcli.purge(all=True, force=True)                  # force means nothing on a secured cluster
    as_user(monkeypatch, secured.urls, acl.ADMIN)
    pcli.kill(made)
    assert sorted(pcli.purge(all=True)["purged"]) == sorted([alices.pid, bobs.pid, made])
    assert pcli.ps(all=True) == []


def test_ended_processes_expire(cluster, redis_server, tmp_path, monkeypatch):
    monkeypatch.setenv("PSTACK_RESULT_TTL", "2s")          # time enough to read the result first
    redis_server.scheduler.stop()
    redis_server.scheduler = Scheduler(redis_server.url, tmp_path)
    cluster.start("e1")
    assert pcli.run(RING)["state"] == "finished"
    wait_for(lambda: pcli.ps(all=True) == [], timeout=10)
    with pytest.raises(ValueError, match="no process 1"):
        pcli.info(1)


def test_the_scheduler_refuses_a_ttl_that_is_not_a_duration(redis_server):
    out = subprocess.run([sys.executable, "-m", "pd.scheduler"], capture_output=True, text=True, timeout=60,
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT), PSTACK_REDIS=redis_server.url,
                                            PSTACK_RESULT_TTL="a week"))
    assert out.returncode != 0 and "PSTACK_RESULT_TTL: 'a week' is not a duration" in out.stderr


def test_ctrl_c_on_a_scripted_run_kills_it_and_says_its_pid(cluster, tmp_path):
    cluster.start("e1")
    forever = write(tmp_path / "f.xml", forever_app("interrupted"))
    proc = subprocess.Popen([sys.executable, "-m", "pcli", "-c", f"run {forever}"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        wait_for(lambda: pcli.ps() and phase(pcli.ps()[0]) == "running", timeout=30)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1 and "process 1 killed" in out
    assert pcli.info(1)["state"] == "killed"


def test_ctrl_c_at_the_prompt_asks_and_lets_it_go_on(cluster, tmp_path, monkeypatch):
    cluster.start("e1", slots=2)
    forever = write(tmp_path / "f.xml", forever_app("asked"))
    monkeypatch.setenv("PCLI_CONTEXT", str(tmp_path / "context.json"))
    monkeypatch.setenv("PCLI_HISTORY", str(tmp_path / "history"))
    with tmux_pcli(dict(os.environ, PYTHONPATH=str(ROOT)), "ctrlc") as (keys_, screen):
        try:
            keys_(f"run {forever}", "Enter")
            wait_for(lambda: pcli.ps() and phase(pcli.ps()[0]) == "running", timeout=30)    # loaded: run waits
            keys_("C-c")
            wait_for(lambda: "kill process 1? [y/N]" in screen(), timeout=20)
            keys_("n", "Enter")
            wait_for(lambda: "process 1 goes on: block 1 / kill 1" in screen(), timeout=20)
            assert pcli.info(1)["state"] == "running"
            keys_(f"run {forever}", "Enter")
            wait_for(lambda: 2 in pcli.ps() and phase(2) == "running", timeout=30)
            keys_("C-c")
            wait_for(lambda: "kill process 2? [y/N]" in screen(), timeout=20)
            keys_("y", "Enter")
            wait_for(lambda: "process 2 killed" in screen(), timeout=20)
            assert pcli.info(2)["state"] == "killed"
        finally:
            for pid in pcli.ps():
                pcli.kill(pid)


def test_ps_shows_each_processs_phase_and_regions_of_devices_only(shell, tmp_path):
    app = write(tmp_path / "forever.xml", forever_app("ps_phase"))
    running = int(shell.do(f"run --async --paused --rmap '{{\"d1\": 1}}' {app}").strip())   # a debugger's place too
    wait_for(lambda: phase(running) == "running")
    queued = int(shell.do(f"run --async {RING}").strip())                                  # e1's 2 slots are taken
    table = shell.do("ps").splitlines()
    assert table[0].split()[:4] == ["PID", "USER", "PHASE", "REG"]
    rows = {int(r.split()[0]): r.split() for r in table[1:] if r.split()[0].isdigit()}
    assert rows[running][2:4] == ["running", "2"] and rows[queued][2] == "queued"
    assert sorted(pcli.info(running)["engines"]) == [0, 1]
    shell.do(f"kill {running}")


def test_results_long_arrays_are_shortened_unless_json(shell):
    assert "state finished" in shell.do(f"run {RING}")          # ring_v2: four 1024-item buffers
    shown = shell.do("result 1 --states")
    assert "... 1024 items" in shown or "items\"" in shown, shown[:500]
    assert len(shown) < 20_000
    whole = json.loads(shell.do("result 1 --json"))
    assert any(isinstance(v, list) and len(v) == 1024 for s in whole["states"].values() for v in s.values())
