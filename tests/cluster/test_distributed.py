"""Processes split into regions across engines and daemons, talking over
ZeroMQ: the same answers as one engine, termination without handler_exit,
hardware-idle barriers, and failures that end every region."""

import threading

import pytest

import pcli
from appcases import APPS, APPS_DIR, check, checker, externals, options, split_exact
from broker.control import APP
from conftest import gone, wait_for
from faults import RUN, record
from psim import psim
from tinyapp import forever_app

SUPERVISED = [a for a in APPS if "<SupervisorType" in a.read_text()]
SPLITTABLE = [a for a in APPS if split_exact(a) and getattr(checker(a), "expect_status", "exit") != "failed"]


def answer(res: dict) -> tuple:
    return res["states"], res["status"], res["metrics"]["Exit code"], res["metrics"]["Delivered messages"]


def run_split(app, n: int) -> dict:
    """`app` in n regions; its externals, if its checker has an engine for
    them, in one more region served by that engine from this client."""
    engine = externals(app)
    if engine is None:
        return pcli.run(str(app), regions=n, **options(app))
    future = pcli.run(str(app), regions=n, externals=engine, async_=True, **options(app))
    serving = threading.Thread(target=engine.run)
    serving.start()
    try:
        return pcli.block(future)
    finally:
        serving.join(timeout=30)


@pytest.fixture
def one_pd(cluster):
    cluster.start("solo", slots=4)
    return cluster


@pytest.fixture
def two_pds(cluster):
    cluster.start("left", slots=2)
    cluster.start("right", slots=2)
    return cluster


@pytest.mark.parametrize("app", SPLITTABLE, ids=lambda p: p.stem)
@pytest.mark.parametrize("where", ["one_pd", "two_pds"])
def test_same_answer_for_1_2_and_4_regions(app, where, request):
    request.getfixturevalue(where)
    whole = psim(str(app), options=options(app), externals=externals(app))
    for n in (1, 2, 4):
        res = run_split(app, n)
        assert res["state"] == "finished", res.get("reason")
        assert answer(res) == answer(whole), f"{n} regions"
        if where == "two_pds" and n > 1:
            assert set(pcli.info(max(pcli.ps(all=True)))["engines"].values()) - {APP} == {"left", "right"}


def test_a_supervisor_in_a_region_of_its_own(two_pds):
    """The supervisor's region need hold no device: every device-to-supervisor
    message, reply and broadcast crosses the data plane."""
    app = APPS_DIR / "sup_barrier_v4.xml"
    whole = psim(str(app))
    rmap = {d: i % 2 for i, d in enumerate(whole["states"])}
    res = pcli.run(str(app), rmap={**rmap, "__supervisor__": 2})
    assert res["state"] == "finished", res.get("reason")
    assert answer(res) == answer(whole)
    check(app, res)
    assert res["regions"][2]["Delivered messages"] == 0
    assert res["regions"][2]["Remote messages sent"] == 6             # 3 broadcasts to 2 regions
    assert len(set(pcli.info(max(pcli.ps(all=True)))["engines"].values())) == 2


@pytest.mark.parametrize("app", [a for a in SUPERVISED if not split_exact(a)], ids=lambda p: p.stem)
def test_every_supervisor_app_ends_split_in_three_regions(app, one_pd):
    """Those whose answer may differ split (split_exact) still end as they should."""
    res = run_split(app, 3)
    module = checker(app)
    expected = getattr(module, "split_status", {getattr(module, "expect_status", "exit")})
    assert res["status"] in expected, res.get("reason")
    assert res["state"] == ("failed" if res["status"] == "failed" else "finished"), res.get("reason")
    if res["status"] == "failed":
        module.check_failure(res)                   # the app's own failure, not ours


def test_app_without_handler_exit_in_three_regions_ends(two_pds):
    app = str(APPS_DIR / "edges_v3.xml")
    res = pcli.run(app, rmap={d: i % 3 for i, d in enumerate(psim(app)["states"])})
    assert res["state"] == "finished" and res["status"] == "idle"
    assert sorted(res["regions"]) == [0, 1, 2]
    assert sum(m["Remote messages sent"] for m in res["regions"].values()) > 0


def test_hardware_idle_barriers_across_regions(two_pds):
    app = APPS_DIR / "barrier_v3.xml"
    cells = [d for d in psim(str(app))["states"]]
    res = pcli.run(str(app), rmap={d: i % 3 for i, d in enumerate(cells)})
    assert res["state"] == "finished"
    for name, check in vars(checker(app)).items():
        if name.startswith("check_"):
            check(res)
    assert res["metrics"]["Hardware idle rounds"] >= 3


def test_per_region_metrics(two_pds):
    res = pcli.run(str(APPS_DIR / "ring_v2.xml"), rmap={"n2": 1, "n3": 1})
    assert [res["regions"][r]["Remote messages sent"] for r in (0, 1)] == [10, 10]
    assert [res["regions"][r]["Delivered messages"] for r in (0, 1)] == [20, 20]
    assert all(res["regions"][r]["Remote bytes"] == 10 * (12 + 8) for r in (0, 1))


def test_killed_daemon_fails_the_whole_process(two_pds):
    future = pcli.run(forever_app("split_orphan"), rmap={"d2": 1, "d3": 1}, rcon={0: "left", 1: "right"}, async_=True)
    wait_for(lambda: two_pds.workers("left") and two_pds.workers("right"))
    survivors = two_pds.workers("right")
    res, seconds = two_pds.kill_during("left", future)
    assert seconds < 10
    assert res["state"] == "failed" and "left" in res["reason"]
    wait_for(lambda: not two_pds.workers("right"), timeout=5)
    record("the daemon of one region of a split process SIGKILLed",
           f"the process fails: {res['reason']}; the other region is stopped", seconds, lost=RUN)
    assert gone(survivors)


def test_failing_region_fails_the_process_with_its_reason(two_pds):
    app = str(APPS_DIR / "assert_v3.xml")
    devices = list(psim(app)["states"])
    res = pcli.run(app, rmap={d: i % 2 for i, d in enumerate(devices)})
    assert res["state"] == "failed" and "assertion" in res["reason"]

