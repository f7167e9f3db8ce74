"""Event traces of processes on a real cluster: a process split in two
regions in random order, run with trace=True, fetched with the shell's
`trace PID FILE`, replays with `psim --replay FILE` to exactly its result;
only its owner may read the trace; processes the trace cannot cover are
refused."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import pcli
from appcases import APPS_DIR, checker
from conftest import ROOT

CAUSAL = str(APPS_DIR / "causal_v3.xml")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def answer(res: dict) -> tuple:
    m = res["metrics"]
    return (res["states"], res["status"], res.get("error"), m["Delivered messages"], m["Sends"], m["Exit code"],
            m["Remote messages sent"], m["Remote messages received"])


SPLIT = {f"{kind}{i}": 1 for kind in ("relay", "sink") for i in range(4)}     # the roots talk to region 1


def fetch_and_replay(pid: int, xml: str, path) -> dict:
    """`trace PID FILE` in the shell, then `psim --replay FILE APP -r`: the replay's result."""
    fetched = cli("-m", "pcli", "-c", f"trace {pid} {path}")
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert "2 region(s)" in fetched.stdout
    replayed = cli("-m", "psim", "--replay", str(path), xml, "-r")    # the trace names its file, not where it is
    assert replayed.returncode in (0, 1) and replayed.stdout, replayed.stderr
    return json.loads(replayed.stdout)


def test_split_random_processes_replay_exactly(secured, tmp_path):
    """Several seeds: some runs fail (then the other region is stopped
    before it records its end: replayed as far as its trace goes)."""
    futures = [pcli.run(CAUSAL, rmap=SPLIT, order="random", seed=seed, trace=True, async_=True)
               for seed in (0, 3, 6, 8)]
    for future in futures:
        res = future.result(timeout=60)
        assert res["metrics"]["Remote messages received"] > 0        # the regions did talk
        again = fetch_and_replay(future.pid, CAUSAL, tmp_path / f"{future.pid}.ptrace")
        assert answer(again) == answer(res)
        assert again["replay"]["regions"] == 2
        assert again["replay"]["unended"] == ([] if res["status"] != "failed" else [0])


def test_a_split_supervisor_process_replays_exactly(secured, tmp_path):
    xml = str(APPS_DIR / "sup_barrier_v4.xml")
    future = pcli.run(xml, regions=2, trace=True, async_=True)
    res = future.result(timeout=60)
    assert res["status"] == "exit" and res["metrics"]["Remote messages sent"] > 0
    assert answer(fetch_and_replay(future.pid, xml, tmp_path / "sup.ptrace")) == answer(res)


def test_only_the_owner_reads_a_trace(secured, monkeypatch, tmp_path):
    future = pcli.run(CAUSAL, trace=True, async_=True)
    future.result(timeout=60)
    monkeypatch.setenv("PSTACK_REDIS", secured.urls["bob"])
    with pytest.raises(PermissionError, match="only its owner may read its trace"):
        pcli.trace(future.pid, tmp_path / "bob.ptrace")
    monkeypatch.setenv("PSTACK_REDIS", secured.urls["alice"])
    assert pcli.trace(future.pid, tmp_path / "alice.ptrace")["regions"] == 1


def test_a_process_without_trace_or_with_a_python_region_is_refused(secured, tmp_path):
    future = pcli.run(CAUSAL, async_=True)
    future.result(timeout=60)
    with pytest.raises(ValueError, match="was not run with trace=True"):
        pcli.trace(future.pid, tmp_path / "none.ptrace")
    app = APPS_DIR / "ext_echo_v3.xml"
    with pytest.raises(ValueError, match="records no trace"):
        pcli.run(str(app), externals=checker(app).externals(), async_=True, trace=True)
    with pytest.raises(ValueError, match=r"fetch it with pcli.trace"):
        pcli.run(CAUSAL, trace=str(tmp_path / "x"))


def test_a_trace_past_its_engine_s_limit_is_cut(cluster):
    """PSTACK_TRACE_MB=0: the region's first chunk passes the limit; the
    process runs on, and its trace says it was cut."""
    cluster.start("e1", env={"PSTACK_TRACE_MB": "0"})
    future = pcli.run(CAUSAL, trace=True, async_=True)
    assert future.result(timeout=60)["state"] == "finished"
    with pytest.raises(ValueError, match="region 0 passed its engine's limit and was cut"):
        pcli.trace(future.pid, "unused.ptrace")
