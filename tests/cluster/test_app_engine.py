"""Application engines (pcli.Engine): a region of a process served by Python
functions in the user's client, over the same data plane and termination
protocol as pd's workers, on a secured cluster (the user's own identity)."""
from __future__ import annotations

import ctypes
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

import pcli
from appcases import EXAMPLES, check, example, supervisor
from broker.control import APP_TTL_MS
from conftest import ROOT
from faults import record
from pcli.engine import ProcessEnded
from psim import psim

pytestmark = pytest.mark.usefixtures("fresh_cache")     # every graph type compiles, as the first time
RING = str(ROOT / "tests" / "apps" / "ring_v2.xml")


def ring_node(engine, msg):
    """n1 of the ring oscillator, in Python: count, toggle, pass it on."""
    st = engine.state.setdefault(msg.dst, {"counter": 0, "state": 0})
    st["counter"] += 1
    st["state"] = 1 - st["state"]
    engine.send(msg.dst, "toggle_out", fields={"src": 1, "dst": 0xFFFFFFFF})


def test_the_originals_example_a_ring_with_n1_in_python(secured):
    eng = pcli.Engine(ring_node)
    future = pcli.run(RING, rmap={"n1": 1}, rcon={1: eng}, async_=True)
    eng.run()
    res = pcli.block(future)
    assert res["state"] == "finished" and res["metrics"]["Exit code"] == 0, res.get("error")
    alone = psim(RING)
    for dev in ("n0", "n2", "n3"):
        assert res["states"][dev] == alone["states"][dev], dev
    assert res["states"]["n1"] == {"counter": 10, "state": 0}


def test_a_raising_function_fails_the_process_with_its_last_traceback_line(secured):
    def broken(engine, msg):
        raise KeyError("no such thing")
    eng = pcli.Engine(broken)
    future = pcli.run(RING, rmap={"n1": 1}, rcon={1: eng}, async_=True)
    eng.run()
    res = pcli.block(future)
    assert res["state"] == "failed"
    assert res["reason"] == "region 1 (application engine): KeyError: 'no such thing'"


def test_the_engine_may_end_the_process(secured):
    def stop_at_five(engine, msg):
        st = engine.state.setdefault(msg.dst, {"seen": 0})
        st["seen"] += 1
        if st["seen"] == 5:
            engine.exit(7)
        else:
            engine.send(src=msg.dst, pin="toggle_out")
    eng = pcli.Engine(stop_at_five)
    future = pcli.run(RING, rmap={"n1": 1}, rcon={1: eng}, async_=True)
    eng.run()
    res = pcli.block(future)
    assert res["metrics"]["Exit code"] == 7 and res["states"]["n1"] == {"seen": 5}


def test_a_batch_engine_gets_arrays(secured):
    seen = []

    def batch(engine, deliveries):
        assert deliveries.dtype.names == ("dst", "dst_pin", "src", "src_pin", "msg")
        assert set(deliveries["msg"]["src"]) == {0}             # the toggle's fields, from n0
        seen.append(len(deliveries))
        for src in np.unique(deliveries["dst"]):
            engine.send("n1", "toggle_out", fields={"src": 1, "dst": int(src)})
    eng = pcli.Engine(receive_batch=batch)
    future = pcli.run(RING, rmap={"n1": 1}, rcon={1: eng}, async_=True)
    thread = threading.Thread(target=eng.run)
    thread.start()
    res = pcli.block(future)
    thread.join(timeout=30)
    assert res["state"] == "finished" and sum(seen) == 10, res["reason"]


def test_a_batch_engine_answers_with_send_batch(secured):
    """s0 and s1 (C, region 0) each send 1..3000 to k (Python); k answers
    every batch with one send_batch of 2v, each to its sender."""
    batches = []

    def echo(engine, deliveries):
        batches.append(len(deliveries))
        engine.send_batch(deliveries["dst"], "back", {"v": 2 * deliveries["msg"]["v"]},
                          send_index=deliveries["src"])     # s0, s1 are devices 0, 1 and back's edges 0, 1
    eng = pcli.Engine(receive_batch=echo)
    future = pcli.run(str(ROOT / "tests" / "cluster" / "apps" / "echo_batch_v3.xml"), rmap={"k": 1},
                      rcon={1: eng}, async_=True)
    eng.run()
    res = pcli.block(future)
    assert res["state"] == "finished", res.get("reason")
    for dev in ("s0", "s1"):
        assert res["states"][dev] == {"sent": 3000, "got": 3000, "sum": 3000 * 3001}, dev
    assert sum(batches) == 6000


ECHO = str(ROOT / "tests" / "apps" / "ext_echo_v3.xml")


def test_an_engine_serves_the_externals(secured):
    def doubler(engine, msg):
        assert (msg.dst, msg.pin, msg.src) == ("io", "in", "dev")
        engine.send("io", "out", v=2 * msg.fields["v"])
    eng = pcli.Engine(doubler)
    future = pcli.run(ECHO, externals=eng, async_=True)
    eng.run()
    res = pcli.block(future)
    assert res["state"] == "finished", res.get("reason")
    assert res["states"]["dev"] == {"sent": 3, "sum": 12, "got": 3}
    assert pcli.info(future.pid)["engines"] == {0: "e1", 1: "@app"}


def test_externals_need_an_engine(secured):
    res = pcli.run(ECHO)
    assert res["state"] == "failed" and "external device 'io' needs an application engine" in res["reason"]


APPS = ROOT / "tests" / "apps"


def run_with(eng: pcli.Engine, app: Path, **how) -> dict:
    future = pcli.run(str(app), async_=True, **how)
    eng.run()
    return pcli.block(future)


@pytest.mark.parametrize("name", ["sup_barrier_v4", "sup_hwidle_v4", "sup_ask_v4"])
def test_a_python_supervisor_in_a_region_of_its_own(secured, name):
    """The app checker's supervisor in Python, in a region of its own, the
    devices in two C regions: the answer of the application's C supervisor."""
    app = APPS / f"{name}.xml"
    eng = supervisor(app)
    devices = list(psim(str(app))["states"])
    rmap = {d: 2 for d in devices[1::2]}
    res = run_with(eng, app, rmap={**rmap, "__supervisor__": 1}, rcon={1: eng})
    assert res["state"] == "finished", res.get("reason")
    check(app, res)
    assert res["regions"][1]["Delivered messages"] == 0 and res["regions"][1]["Steps"] > 0   # reports are sends


def test_a_python_device_asks_the_c_supervisor(secured):
    """a0 in Python talks to the application's C supervisor (region 0) on
    __SUP_OUT__ and hears its replies on __SUP_IN__."""
    app = APPS / "sup_ask_v4.xml"

    def a0(engine, msg):
        st = engine.state.setdefault("a0", {"asked": 0, "answered": 0, "sum": 0, "waiting": 0, "notes": 0,
                                            "toNote": 0})
        if msg.pin == "__SUP_IN__":
            assert msg.src == "__supervisor__" and msg.fields == {"from": 0, "x": 0, "round": st["asked"] - 1}
            st["answered"] += 1
            st["waiting"] = 0
            engine.send("a0", "note_out", fields={"from": 0})
        else:
            st["notes"] += 1
        if not st["waiting"] and st["asked"] < 3:
            engine.send("a0", "__SUP_OUT__", fields={"from": 0, "x": 0, "round": st["asked"]})
            st["asked"] += 1
            st["waiting"] = 1
    eng = pcli.Engine(a0)
    res = run_with(eng, app, rmap={"a0": 1}, rcon={1: eng})
    assert res["state"] == "finished", res.get("reason")
    check(app, res)


def test_only_the_supervisor_s_engine_may_reply(secured):
    def replier(engine, msg):
        engine.reply(msg)
    eng = pcli.Engine(replier)
    res = run_with(eng, APPS / "sup_ask_v4.xml", rmap={"a0": 1}, rcon={1: eng})
    assert res["state"] == "failed"
    assert "reply: this engine does not run the application's supervisor" in res["reason"], res["reason"]


def test_an_engine_feeds_a_file_into_a_running_process(secured, tmp_path):
    """docs/engines.md's feeder on a cluster: its start function sends the
    file's numbers into the process as its region starts."""
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("\n".join(str(n) for n in range(1, 101)) + "\n")
    eng = example("feed").feeder(str(numbers))
    res = run_with(eng, EXAMPLES / "feed.xml", externals=eng)
    assert res["state"] == "finished", res.get("reason")
    assert res["states"]["acc"] == {"sum": 5050, "count": 100}


# ---- liveness: from the claim, through the other regions' compile, whatever the client does ----------

@pytest.mark.slow
def test_an_engine_outlives_a_receive_that_holds_the_gil(secured):
    """receive holds the GIL (a C call through ctypes.PyDLL) for longer than
    a client-side region may stay silent: its beats, from a process of
    their own, go on, and the process finishes."""
    hold = APP_TTL_MS / 1000 + 1.0
    held = []

    def greedy(engine, msg):
        if not held:
            t0 = time.monotonic()
            ctypes.PyDLL(None).usleep(int(hold * 1e6))         # PyDLL: the GIL is held throughout
            held.append(time.monotonic() - t0)
        ring_node(engine, msg)
    eng = pcli.Engine(greedy)
    future = pcli.run(RING, rmap={"n1": 1}, rcon={1: eng}, async_=True)
    eng.run()
    res = pcli.block(future)
    assert held and held[0] >= hold
    assert res["state"] == "finished", res.get("reason")
    assert res["states"]["n1"] == {"counter": 10, "state": 0}


def test_an_engine_ends_at_once_with_the_reason_of_a_process_killed_before_it_ran(secured):
    """Killed while region 0 still compiles (a graph type never compiled
    here) and the engine waits for it at the rendezvous, or before: eng.run()
    raises the reason within seconds, not after the rendezvous's 60 s."""
    eng = pcli.Engine(ring_node)
    future = pcli.run(RING, rmap={"n1": 1}, rcon={1: eng}, async_=True)
    killer = threading.Timer(1.0, pcli.kill, [future.pid])
    killer.start()
    t0 = time.monotonic()
    with pytest.raises(ProcessEnded, match=f"process {future.pid} killed"):
        eng.run()
    killer.join()
    assert time.monotonic() - t0 < 15
    assert pcli.block(future)["state"] == "killed"


def test_an_engine_ends_at_once_with_the_reason_of_a_process_killed_while_it_serves(secured):
    """Killed from its first delivery (the kill answered before receive
    returns): eng.run() raises the reason, whether the region hears of it
    from its beat's answer or from its result's."""
    seen = []

    def kill_on_first(engine, msg):
        if not seen:
            pcli.kill(future.pid)
        seen.append(time.monotonic())
    eng = pcli.Engine(kill_on_first)
    future = pcli.run(RING, rmap={"n1": 1}, rcon={1: eng}, async_=True)
    with pytest.raises(ProcessEnded, match=f"process {future.pid} killed"):
        eng.run()
    assert time.monotonic() - seen[0] < 5
    assert eng.jobs == []


@pytest.mark.slow
def test_an_engine_whose_client_dies_fails_its_process_within_the_beat_ttl(secured, tmp_path):
    """The beats stop with the client (its keepalive follows the pipe the
    kernel closes): the process fails with the reason, it does not hang."""
    script = tmp_path / "client.py"
    script.write_text(f"""
import os, pcli
def die(engine, msg):
    os._exit(9)
eng = pcli.Engine(die)
fut = pcli.run({RING!r}, rmap={{"n1": 1}}, rcon={{1: eng}}, async_=True)
print(fut.pid, flush=True)
eng.run()
""")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 9, out.stderr
    pid = int(out.stdout.split()[0])
    t0 = time.monotonic()
    res = pcli.Future(pid).result(timeout=APP_TTL_MS / 1000 + 10)
    took = time.monotonic() - t0
    assert res["state"] == "failed"
    assert res["reason"] == "region 1: its application engine stopped responding (no heartbeat)"
    assert took < APP_TTL_MS / 1000 + 5
    record("the client serving an application engine's region dies (os._exit in receive)",
           f"process failed: {res['reason']}; its keepalive ended with the client", took,
           "the failed process's run (resubmit it); nothing else")


def test_an_engine_whose_keepalive_dies_fails_its_region_with_the_reason(secured):
    """The keepalive process killed under the engine: its region cannot stay
    alive, so it fails at once and says so (not 10 s later as silence)."""
    def kill_keepalive(engine, msg):
        for child in psutil.Process().children():
            try:
                if "pcli.keepalive" in child.cmdline():
                    child.kill()
            except psutil.Error:             # the fixtures' own children, exiting
                pass
        ring_node(engine, msg)
    eng = pcli.Engine(kill_keepalive)
    future = pcli.run(RING, rmap={"n1": 1}, rcon={1: eng}, async_=True)
    eng.run()
    res = pcli.block(future)
    assert res["state"] == "failed"
    assert "region 1 (application engine)" in res["reason"] and "its keepalive (pcli/keepalive.py) stopped" \
        in res["reason"], res["reason"]
