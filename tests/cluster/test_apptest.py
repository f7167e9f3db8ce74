"""Push-button tests over the whole back end, on a real cluster of two
engines: `pcli -c "test ..."` runs every app with a checker on psim and on
each engine, split and whole, and says which checker failed and why; the
Python API's report; JUnit XML; and the pytest plugin in a real pytest."""
import os
import re
import shutil
import subprocess
import sys
from xml.etree import ElementTree

import pytest

import pcli
from appcases import APPS_DIR
from conftest import ROOT

APPS = ("ring_v2", "order_sensitive_v3", "sup_bcast_v4")    # exits; schedule dependent, idle; not split exact
WRONG = '''
def check_delivered(result):
    """Forty-one deliveries"""
    assert result["metrics"]["Delivered messages"] == 41, f"delivered {result['metrics']['Delivered messages']}"
'''


@pytest.fixture
def two_engines(cluster):
    cluster.start("e1", slots=2)
    cluster.start("e2", slots=2)
    return cluster


@pytest.fixture
def apps(tmp_path):
    """A folder with copies of APPS and their checkers."""
    folder = tmp_path / "apps"
    folder.mkdir()
    for name in APPS:
        for suffix in (".xml", ".py"):
            shutil.copy(APPS_DIR / f"{name}{suffix}", folder)
    return folder


@pytest.fixture
def wrong(apps):
    """APPS with ring_v2 given a failing checker too."""
    with open(apps / "ring_v2.py", "a") as f:
        f.write(WRONG)
    return apps


def run(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def rows(output: str) -> dict[tuple[str, str, str], str]:
    """(app, engine, regions) -> result, from the table's lines."""
    found = {}
    for line in output.splitlines():
        cells = line.split()
        if len(cells) >= 5 and cells[0] in APPS:
            found[(cells[0], cells[1], cells[2])] = cells[4]
    return found


def junit_counts(path) -> tuple[int, int, int]:
    cases = ElementTree.parse(path).getroot().iter("testcase")
    kinds = [next((child.tag for child in case if child.tag in ("failure", "skipped")), "pass") for case in cases]
    return len(kinds), kinds.count("failure"), kinds.count("skipped")


def test_every_app_passes_on_psim_and_every_engine_whole_and_split(two_engines, apps, tmp_path):
    junit = tmp_path / "apps.junit.xml"
    done = run("-m", "pcli", "-c", f"test {apps} --engines all --regions 1,2 --junit {junit}")
    assert done.returncode == 0, done.stdout + done.stderr
    table = rows(done.stdout)
    assert set(table) == {(a, e, r) for a in APPS for e in ("psim", "e1", "e2") for r in ("1", "2")}
    assert {k: v for k, v in table.items() if v != "pass"} == {(a, "psim", "2"): "skip" for a in APPS}
    assert "psim runs regions=1 only" in done.stdout
    assert "status only: not split exact" in done.stdout                   # sup_bcast_v4, split
    assert re.search(r"^18 cases: 15 passed, 0 failed, 3 skipped in [\d.]+ s$", done.stdout, re.M), done.stdout
    assert junit_counts(junit) == (18, 0, 3)


def test_a_failing_checker_fails_the_command_with_its_name_and_message(two_engines, wrong, tmp_path):
    junit = tmp_path / "apps.junit.xml"
    done = run("-m", "pcli", "-c", f"test {wrong} --engines all --junit {junit}")
    assert done.returncode == 1
    table = rows(done.stdout)
    assert [k for k, v in table.items() if v == "fail"] == [("ring_v2", e, "1") for e in ("psim", "e1", "e2")]
    for engine in ("psim", "e1", "e2"):
        assert f"FAIL ring_v2[{engine}-r1-default] Forty-one deliveries: delivered 40" in done.stdout
    assert junit_counts(junit) == (9, 3, 0)
    failures = ElementTree.parse(junit).getroot().iter("failure")
    assert {f.get("message") for f in failures} == {"Forty-one deliveries: delivered 40"}


def test_the_python_api_returns_the_report(two_engines, apps):
    report = pcli.test(apps, engines="e2", regions=[2], orders=["default", "random:5"])
    outcomes = {r.case.id: (r.outcome, r.note) for r in report.results}
    assert outcomes == {
        "ring_v2[e2-r2-default]": ("pass", ""), "ring_v2[e2-r2-random:5]": ("pass", ""),
        "order_sensitive_v3[e2-r2-default]": ("pass", "status only: not split exact"),
        "order_sensitive_v3[e2-r2-random:5]": ("skip", "not schedule independent"),
        "sup_bcast_v4[e2-r2-default]": ("pass", "status only: not split exact"),
        "sup_bcast_v4[e2-r2-random:5]": ("pass", "status only: not split exact")}
    assert report.ok
    pinned = {engine for pid in pcli.ps(all=True) for engine in pcli.info(pid)["engines"].values()}
    assert pinned == {"e2"}                                                  # rcon pinned every region
    with pytest.raises(ValueError, match="no engine 'e3' in the cluster"):
        pcli.test(apps, engines="psim,e3")
    two_engines.start("e3", slots=1)
    report = pcli.test(apps / "ring_v2.xml", engines="e3", regions="1,2")
    assert [(r.outcome, r.note) for r in report.results] == [
        ("pass", ""), ("skip", "engine e3 has 1 slot, fewer than the regions")]


def test_the_pytest_plugin_collects_and_runs_the_cases(wrong, tmp_path):
    done = run("-m", "pytest", "--pstack-apps", str(wrong), "--pstack-orders", "default,random:1",
               "-p", "pcli.pytest_plugin", "-p", "no:cacheprovider", "-v", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"^=+ 2 failed, 3 passed, 1 skipped in ", done.stdout, re.M), done.stdout
    assert "apps/ring_v2.xml::ring_v2[psim-r1-random:1] FAILED" in done.stdout
    assert "apps/order_sensitive_v3.xml::order_sensitive_v3[psim-r1-random:1] SKIPPED" in done.stdout
    assert "Forty-one deliveries: delivered 40" in done.stdout
