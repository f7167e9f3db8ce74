"""Application engines (pcli.Engine): a region of a process served by Python
functions in the user's client, over the same data plane and termination
protocol as pd's workers, on a secured cluster (the user's own identity)."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import pcli
from appcases import EXAMPLES, check, example, supervisor
from conftest import ROOT
from psim import psim

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
