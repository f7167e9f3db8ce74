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


@pytest.mark.parametrize("app,options", [("causal_v3", {"rmap": SPLIT, "order": "random", "seed": 3}),
                                         ("sup_barrier_v4", {"regions": 2})], ids=["random", "supervisor"])
def test_a_split_process_replays_exactly(secured, tmp_path, app, options):
    xml = str(APPS_DIR / f"{app}.xml")
    future = pcli.run(xml, trace=True, async_=True, **options)
    res = future.result(timeout=60)
    assert res["metrics"]["Remote messages sent"] > 0        # the regions did talk
    path = tmp_path / "process.ptrace"
    fetched = cli("-m", "pcli", "-c", f"trace {future.pid} {path}")
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert "2 region(s)" in fetched.stdout
    replayed = cli("-m", "psim", "--replay", str(path), xml, "-r")    # the trace names its file, not where it is
    assert replayed.returncode == (0 if res["status"] in ("idle", "exit") else 1), replayed.stderr
    again = json.loads(replayed.stdout)
    assert answer(again) == answer(res)
    assert again["replay"]["regions"] == 2


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
