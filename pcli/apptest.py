"""Push-button tests over the whole back end: every application that has a
checker file (psim/check.py), run on every chosen engine (the cluster's,
and psim in this process), in every region count and every order, its
checkers judging each run.

    report = pcli.test("tests/apps", engines="all", regions=[1, 2], orders=["default", "random:7"])
    report.ok; report.results; report.write_junit("apps.xml")

The shell's `test` command, the pytest plugin (pcli/pytest_plugin.py) and
this API share plan() and run_case().  What a case checks:

- a random order of an app that is not schedule_independent: skipped;
- psim with regions > 1: skipped (psim runs an application whole, in one
  region; split runs are the cluster's);
- a split run (regions > 1) of an app that is not split_exact: only its
  status is checked, against split_status (default expect_status), since
  its states may differ split (that is what split_exact = False says);
- an engine with fewer slots than the regions, or not running: skipped;
- otherwise the status, then every check_* function.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence
from xml.etree import ElementTree as ET

import redis
from rich.table import Table
from rich.text import Text

from psim.check import Checker, Verdict, find, last_line

from . import api
from .engine import Engine, ProcessEnded

PSIM = "psim"              # the engine name of psim, in this process
ALL = "all"
DEFAULT_ORDER = "default"
TIMEOUT = 120.0            # seconds a case may run (its process fails "timed out" after that)
PASS, FAIL, SKIP = "pass", "fail", "skip"
COLUMNS = ("APP", "ENGINE", "REG", "ORDER", "RESULT", "CHECKER", "MESSAGE")
STYLE = {PASS: "green", FAIL: "bold red", SKIP: "yellow"}


@dataclass(frozen=True)
class Case:
    """One application on one engine, in one region count and one order."""
    checker: Checker
    engine: str
    regions: int
    order: str
    skip: str = ""             # why it is not run; "" when it is

    @property
    def label(self) -> str:
        return f"{self.engine}-r{self.regions}-{self.order}"

    @property
    def id(self) -> str:
        return f"{self.checker.name}[{self.label}]"

    @property
    def status_only(self) -> bool:
        """A split run of an app that is not split exact: only its status is checked."""
        return self.regions > 1 and not self.checker.split_exact


@dataclass
class CaseResult:
    case: Case
    outcome: str                                 # PASS, FAIL or SKIP
    verdicts: list[Verdict] = field(default_factory=list)
    note: str = ""                               # why skipped, or what a pass did not check
    seconds: float = 0.0

    @property
    def failures(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.passed]


class Report:
    """The results of a plan's cases, as a table and as JUnit XML."""

    def __init__(self, results: list[CaseResult], seconds: float = 0.0):
        self.results, self.seconds = results, seconds

    def count(self, outcome: str) -> int:
        return sum(r.outcome == outcome for r in self.results)

    @property
    def ok(self) -> bool:
        """Nothing failed."""
        return self.count(FAIL) == 0

    def rows(self) -> list[tuple[str, ...]]:
        """One row per case: COLUMNS, the first failing checker and its message."""
        rows = []
        for r in self.results:
            c, first = r.case, (r.failures or [None])[0]
            checker, message = (first.name, first.message) if first else ("", r.note)
            rows.append((c.checker.name, c.engine, str(c.regions), c.order, r.outcome, checker, message))
        return rows

    def table(self) -> Table:
        t = Table(box=None, header_style="bold", pad_edge=False)
        for name in COLUMNS:             # on a narrow screen the checker and its message wrap, not the case
            t.add_column(name, no_wrap=name not in ("CHECKER", "MESSAGE"), overflow="fold")
        for row in self.rows():
            t.add_row(*row[:4], Text(row[4], style=STYLE[row[4]]), *row[5:])
        return t

    def failure_lines(self) -> list[str]:
        """Every failing checker of every failed case, its message whole."""
        return [f"FAIL {r.case.id} {v.name}: {v.message}" for r in self.results for v in r.failures]

    def summary(self) -> str:
        return (f"{len(self.results)} cases: {self.count(PASS)} passed, {self.count(FAIL)} failed, "
                f"{self.count(SKIP)} skipped in {self.seconds:.1f} s")

    def junit(self) -> ET.ElementTree:
        """JUnit XML: one testsuite, one testcase per case (classname: the
        app, name: engine-rREGIONS-order)."""
        counts = {"tests": str(len(self.results)), "failures": str(self.count(FAIL)), "errors": "0",
                  "skipped": str(self.count(SKIP)), "time": f"{self.seconds:.3f}"}
        suites = ET.Element("testsuites", counts)
        suite = ET.SubElement(suites, "testsuite", {"name": "pstack apps", **counts})
        for r in self.results:
            case = ET.SubElement(suite, "testcase", {"classname": r.case.checker.name, "name": r.case.label,
                                                     "file": str(r.case.checker.xml), "time": f"{r.seconds:.3f}"})
            if r.outcome == FAIL:
                first = r.failures[0]
                failure = ET.SubElement(case, "failure", {"message": f"{first.name}: {first.message}",
                                                          "type": "check"})
                failure.text = "\n".join(f"{v.name}: {v.message}" for v in r.failures)
            elif r.outcome == SKIP:
                ET.SubElement(case, "skipped", {"message": r.note})
            elif r.note:
                ET.SubElement(case, "system-out").text = r.note
        ET.indent(suites)
        return ET.ElementTree(suites)

    def write_junit(self, path: str | Path) -> None:
        self.junit().write(path, encoding="utf-8", xml_declaration=True)


def names(value: str | Iterable) -> list[str]:
    """A comma-separated list (the command line's form) or a sequence."""
    parts = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return [p.strip() for p in parts if p.strip()]


def region_counts(value: str | Iterable) -> list[int]:
    try:
        counts = [int(n) for n in names(value)]
    except ValueError:
        raise ValueError(f"regions: expected whole numbers such as 1,2, not {value!r}") from None
    if not counts or min(counts) < 1:
        raise ValueError(f"regions: expected numbers from 1 up, not {value!r}")
    return counts


def order_options(order: str) -> dict:
    """psim options for an order: default (the checker's own, fixed
    unless they say otherwise) or random:SEED."""
    if order == DEFAULT_ORDER:
        return {}
    kind, _, seed = order.partition(":")
    if kind != "random" or not seed.isdigit():
        raise ValueError(f"order {order!r}: expected {DEFAULT_ORDER} or random:SEED (e.g. random:7)")
    return {"order": "random", "seed": int(seed)}


def engine_records(wanted: list[str]) -> tuple[list[str], dict[str, dict]]:
    """The engine names to run on (`all`: psim and every registered
    engine) and the cluster's records of them.  The cluster is asked only
    when an engine other than psim is wanted."""
    if wanted == [PSIM]:
        return wanted, {}
    try:
        records = {e["name"]: e for e in api.engines()}
    except redis.ConnectionError as e:
        raise ValueError(f"engines: cannot reach the cluster ({e}); --engines {PSIM} runs psim alone") from None
    if wanted == [ALL]:
        return [PSIM, *records], records
    unknown = [n for n in wanted if n != PSIM and n not in records]
    if unknown:
        raise ValueError(f"engines: no engine {', '.join(map(repr, unknown))} in the cluster "
                         f"(registered: {', '.join(records) or 'none'}; and {PSIM}, or {ALL})")
    return wanted, records


def skip_reason(checker: Checker, engine: str, regions: int, order: str, record: dict | None) -> str:
    if order != DEFAULT_ORDER and not checker.schedule_independent:
        return "not schedule independent"
    if engine == PSIM and regions > 1:
        return "psim runs regions=1 only"
    if record is not None and not record["alive"]:
        return f"engine {engine} is not running"
    if record is not None and record["slots"] < regions:
        return f"engine {engine} has {record['slots']} slot{'s' * (record['slots'] != 1)}, fewer than the regions"
    return ""


def plan(paths: str | Path | Iterable, engines: str | Iterable = ALL, regions: str | Iterable = (1,),
         orders: str | Iterable = (DEFAULT_ORDER,)) -> list[Case]:
    """Every case of the applications with checkers at `paths` (files or
    folders, psim.check.find), app by app, then engine, regions, order."""
    return cases(find([paths] if isinstance(paths, (str, Path)) else paths), engines, regions, orders)


def cases(checkers: list[Checker], engines: str | Iterable = ALL, regions: str | Iterable = (1,),
          orders: str | Iterable = (DEFAULT_ORDER,)) -> list[Case]:
    """Every case of these checkers' applications (plan())."""
    chosen, records = engine_records(names(engines))
    counts, order_list = region_counts(regions), names(orders)
    for order in order_list:
        order_options(order)                 # a bad order fails here, before any run
    return [Case(c, e, n, o, skip_reason(c, e, n, o, records.get(e)))
            for c in checkers for e in chosen for n in counts for o in order_list]


def run_case(case: Case, timeout: float = TIMEOUT) -> CaseResult:
    """Run one case and judge it by its checker."""
    if case.skip:
        return CaseResult(case, SKIP, note=case.skip)
    checker, start = case.checker, time.monotonic()
    options = {"timeout": timeout, **checker.options, **order_options(case.order)}
    try:
        res = checker.run(options) if case.engine == PSIM else run_on_engine(case, options, timeout)
    except Exception as e:                   # bad input, a refused process, an engine factory that raised
        verdicts = [Verdict("run", False, last_line(e))]
    else:
        statuses = checker.split_status if case.status_only else None
        verdicts = checker.verdicts(res, statuses, status_only=case.status_only)
    seconds = time.monotonic() - start
    failed = any(not v.passed for v in verdicts)
    note = "status only: not split exact" if case.status_only else ""
    return CaseResult(case, FAIL if failed else PASS, verdicts, note, seconds)


def run_on_engine(case: Case, options: dict, timeout: float) -> dict:
    """The case's process, all its regions pinned on its engine by rcon;
    its externals, if any, served from here (a region of their own)."""
    externals = case.checker.externals()
    future = api.run(str(case.checker.xml), rcon={r: case.engine for r in range(case.regions)},
                     regions=case.regions, externals=externals, async_=True, **options)
    serving = threading.Thread(target=serve_externals, args=(externals,), daemon=True) if externals else None
    if serving:
        serving.start()
    try:
        return future.result(timeout=timeout + 30)        # the process's own timeout comes first
    except TimeoutError:
        api.kill(future.pid)
        raise TimeoutError(f"process {future.pid} gave no result in {timeout + 30:g} s: killed") from None
    finally:
        if serving:
            serving.join(timeout=30)


def serve_externals(engine: Engine) -> None:
    """The case's externals, until its process ends.  A process that fails
    elsewhere is the case's result (its future says why), not an error of
    this thread."""
    try:
        engine.run()
    except ProcessEnded:
        pass


def test(paths: str | Path | Sequence, engines: str | Iterable = ALL, regions: str | Iterable = (1,),
         orders: str | Iterable = (DEFAULT_ORDER,), junit: str | Path | None = None,
         timeout: float = TIMEOUT) -> Report:
    """Run every case of the applications at `paths` (plan()) and return
    the Report; with `junit`, also write it there as JUnit XML."""
    start = time.monotonic()
    results = [run_case(case, timeout) for case in plan(paths, engines, regions, orders)]
    report = Report(results, time.monotonic() - start)
    if junit:
        report.write_junit(junit)
    return report
