"""psim --threads N: one loaded instance, split by METIS, run by N engines
in N threads over the region protocol, gives one engine's answer: states,
status, exit code and deliveries for the apps whose answer survives a
split (split_exact), the expected status for the others, the same failures,
and the refusals of one engine."""
import json
import subprocess
import sys

import pytest

from appcases import APPS, APPS_DIR, check, checker, externals, options, split_exact
from psim import psim
from psim.errors import BadInput
from tinyapp import ring_app

EXACT = [a for a in APPS if split_exact(a) and externals(a) is None
         and getattr(checker(a), "expect_status", "exit") != "failed"]
UNEXACT = [a for a in APPS if not split_exact(a) and "<SupervisorType" in a.read_text()]
FAILING = [a for a in APPS if split_exact(a) and getattr(checker(a), "expect_status", "exit") == "failed"]


def answer(res: dict) -> tuple:
    return res["states"], res["status"], res["metrics"]["Exit code"], res["metrics"]["Delivered messages"]


def threaded(app, n: int, **more) -> dict:
    return psim(str(app), options={**options(app), "threads": n, **more})


@pytest.mark.parametrize("app", EXACT, ids=lambda p: p.stem)
def test_threads_give_one_engines_answer(app):
    whole = psim(str(app), options=options(app))
    for n in (2, 3):
        res = threaded(app, n)
        assert answer(res) == answer(whole), f"{n} threads"
        assert sorted(map(tuple, res["log"])) == sorted(map(tuple, whole["log"])), f"{n} threads"
        assert res["metrics"]["Sends"] == whole["metrics"]["Sends"]
        assert res["metrics"]["Threads"] == min(n, whole["metrics"]["Devices"])
        check(app, res)


@pytest.mark.parametrize("app", UNEXACT, ids=lambda p: p.stem)
def test_apps_whose_answer_depends_on_the_split_still_end_as_they_should(app):
    module = checker(app)
    expected = getattr(module, "split_status", {getattr(module, "expect_status", "exit")})
    for n in (2, 3):
        res = threaded(app, n)
        assert res["status"] in expected, res.get("error")
        if res["status"] == "failed" and hasattr(module, "check_failure"):
            module.check_failure(res)                   # the app's own failure, not ours


@pytest.mark.parametrize("app", FAILING, ids=lambda p: p.stem)
def test_failures_are_one_engines(app):
    """The run fails with the failing region's reason, the others stopped."""
    whole = psim(str(app), options=options(app))
    res = threaded(app, 2)
    check(app, res)
    assert res["status"] == "failed"
    if "step limit" not in whole["error"]:        # the limit counts each thread's steps: its states differ
        assert res["error"] == whole["error"]
    assert res["metrics"]["Exit code"] == whole["metrics"]["Exit code"]


def test_exit_codes_and_status_through_the_command():
    for name in ("ring_v2", "assert_v3", "edges_v3", "fake_exit_fail_v3"):
        app = str(APPS_DIR / f"{name}.xml")
        one = subprocess.run([sys.executable, "-m", "psim", app, "-r"], capture_output=True, text=True)
        two = subprocess.run([sys.executable, "-m", "psim", app, "-r", "--threads", "2"], capture_output=True,
                             text=True)
        assert two.returncode == one.returncode, (name, two.stderr)
        r1, r2 = json.loads(one.stdout), json.loads(two.stdout)
        assert (r2["status"], r2["metrics"]["Exit code"], r2.get("error")) == \
            (r1["status"], r1["metrics"]["Exit code"], r1.get("error")), name
        if r1["status"] != "failed":              # a failure stops the other threads wherever they are
            assert answer(r2) == answer(r1), name
        assert r2["metrics"]["Threads"] == 2


def test_more_threads_than_devices_runs_one_per_device():
    app = APPS_DIR / "ring_v2.xml"
    res = threaded(app, 16)
    assert res["metrics"]["Threads"] == 4
    assert sorted(res["regions"]) == [0, 1, 2, 3]
    assert answer(res) == answer(psim(str(app)))


def test_one_thread_is_the_plain_path(tmp_path):
    app = str(APPS_DIR / "ring_v2.xml")
    res = psim(app, options={"threads": 1})
    assert "Threads" not in res["metrics"] and "regions" not in res and "Region" not in res["metrics"]
    assert answer(res) == answer(psim(app))
    one = tmp_path / "one.xml"
    one.write_text(ring_app("one_device", n=1))
    single = psim(str(one), options={"threads": 4})      # one device: nothing to split
    assert "Threads" not in single["metrics"] and answer(single) == answer(psim(str(one)))


def test_records_cross_threads_and_are_counted():
    res = threaded(APPS_DIR / "ring_v2.xml", 2)
    sent = res["metrics"]["Remote messages sent"]
    assert sent > 0 and sent == res["metrics"]["Remote messages received"]
    assert sum(m["Delivered messages"] for m in res["regions"].values()) == res["metrics"]["Delivered messages"]


def test_hardware_idle_rounds_are_the_processes():
    app = APPS_DIR / "barrier_v3.xml"
    whole = psim(str(app))
    res = threaded(app, 3)
    assert res["metrics"]["Hardware idle rounds"] == whole["metrics"]["Hardware idle rounds"]
    check(app, res)


def test_externals_are_refused_as_with_one_engine():
    app = str(APPS_DIR / "ext_echo_v3.xml")
    with pytest.raises(BadInput) as one:
        psim(app)
    with pytest.raises(BadInput) as two:
        psim(app, options={"threads": 2})
    assert str(two.value) == str(one.value)
    with pytest.raises(BadInput, match="--threads runs psim's own engines"):
        psim(app, options={"threads": 2}, externals=externals(APPS_DIR / "ext_echo_v3.xml"))


def test_threads_refuse_a_region_map_and_a_trace(tmp_path):
    app = str(APPS_DIR / "ring_v2.xml")
    with pytest.raises(BadInput, match="give no region map"):
        psim(app, rmap={"n2": 1}, options={"threads": 2})
    with pytest.raises(BadInput, match="cannot be traced"):
        psim(app, options={"threads": 2, "trace": str(tmp_path / "t.trace")})


@pytest.mark.parametrize("bad", [0, -1, True, "2"])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match="threads must be a whole number"):
        psim(str(APPS_DIR / "ring_v2.xml"), options={"threads": bad})


def test_the_command_refuses_zero_threads():
    done = subprocess.run([sys.executable, "-m", "psim", str(APPS_DIR / "ring_v2.xml"), "--threads", "0"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "threads must be a whole number" in done.stderr
