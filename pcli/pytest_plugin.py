"""pytest plugin: `pytest --pstack-apps PATH` collects the cases of
`pcli test` (pcli/apptest.py) as pytest items, one per application,
engine, region count and order, with ids like `ring_v2[psim-r1-default]`:

    pytest --pstack-apps tests/apps --pstack-engines all --pstack-regions 1,2 --pstack-orders default,random:7

PATH is an app's .xml or .py, or a folder (as for `pcli test`); the
option may be repeated.  Paths given to pytest as well are collected as
usual; without any, only the applications are.  Engines default to psim
alone, which needs no cluster.  Installed as a pytest11 entry point (also
`-p pcli.pytest_plugin`); pcli.apptest is imported only when the option
is given.
"""
from __future__ import annotations

from pathlib import Path

import pytest

CASES = pytest.StashKey[dict]()          # resolved app path -> its cases


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pstack", "pstack applications and their checkers")
    group.addoption("--pstack-apps", action="append", default=[], metavar="PATH",
                    help="collect the applications with checkers at PATH (an app's .xml or .py, or a folder)")
    group.addoption("--pstack-engines", default="psim", metavar="all|NAME,...",
                    help="engines to run them on: psim and the cluster's ($PSTACK_REDIS); all: psim and every "
                         "registered engine (default psim)")
    group.addoption("--pstack-regions", default="1", metavar="N,...", help="region counts (default 1)")
    group.addoption("--pstack-orders", default="default", metavar="default|random:SEED,...",
                    help="orders (default: default)")
    group.addoption("--pstack-timeout", type=float, default=None, metavar="S",
                    help="fail a run after S seconds (default: pcli test's)")


def pytest_configure(config: pytest.Config) -> None:
    paths = config.getoption("pstack_apps")
    if not paths:
        return
    from pcli import apptest
    from psim.errors import BadInput
    try:
        planned = apptest.plan(paths, config.getoption("pstack_engines"), config.getoption("pstack_regions"),
                               config.getoption("pstack_orders"))
    except (BadInput, ValueError, OSError) as e:
        raise pytest.UsageError(f"--pstack-apps: {e}") from None
    by_app: dict[Path, list] = {}
    for case in planned:
        by_app.setdefault(case.checker.xml.resolve(), []).append(case)
    config.stash[CASES] = by_app
    apps = [str(p) for p in by_app]
    given = config.args_source == pytest.Config.ArgsSource.ARGS
    config.args = [*config.args, *apps] if given else apps


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.resolve() in parent.config.stash.get(CASES, {}):
        return AppFile.from_parent(parent, path=file_path)
    return None


class AppFile(pytest.File):
    """An application: its cases."""

    def collect(self):
        for case in self.config.stash[CASES][self.path.resolve()]:
            item = AppCase.from_parent(self, name=case.id, case=case)
            if case.skip:                    # known before any run: reported at the app, not in this module
                item.add_marker(pytest.mark.skip(reason=case.skip))
            yield item


class CaseFailed(Exception):
    def __init__(self, result):
        super().__init__(result.case.id)
        self.result = result


class AppCase(pytest.Item):
    """One case: run by pcli.apptest.run_case, failed by its checkers."""

    def __init__(self, *, case, **kwargs):
        super().__init__(**kwargs)
        self.case = case

    def runtest(self) -> None:
        from pcli import apptest
        timeout = self.config.getoption("pstack_timeout") or apptest.TIMEOUT
        result = apptest.run_case(self.case, timeout)
        if result.outcome == apptest.FAIL:
            raise CaseFailed(result)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CaseFailed):
            return "\n".join(f"{v.name}: {v.message}" for v in excinfo.value.result.failures)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, 0, self.name        # a skip is reported at a line: the file's first
