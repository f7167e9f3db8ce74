"""An application's checkers, and running them on its result: the one
owner of "run the checkers of an app" (`psim --check`, `pcli test`, the
pytest plugin and the project's own tests use it).

A checker file is `X.py` beside `X.xml`: `check_*` functions, each called
with the run's result and raising (an assert) when it is wrong; the first
line of a function's docstring names it in reports, else its name.
Optional module attributes: `expect_status` ("exit", "idle" or "failed";
default "exit"), `options` (psim options for the run), `schedule_independent`
(default True: the checkers pass under random orders), `exact_answer`
(default: schedule_independent), `split_exact` (default: exact_answer; the
checkers pass split into regions), `split_status` (the statuses a split run
may end with when it is not split exact; default {expect_status}), and the
factories `externals()` and `supervisor()` (a pcli.Engine for its external
devices, or to run its supervisor in Python).

psim stays the layer below pcli: a checker file may import pcli (for its
engines), but this module does not.
"""
from __future__ import annotations

import importlib.util
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterable

from .errors import BadInput
from .run import psim

PREFIX = "check_"
SUFFIXES = (".xml", ".xml.gz")


@dataclass(frozen=True)
class Verdict:
    """One checker's outcome on one result."""
    name: str            # the first line of its docstring, else its function name
    passed: bool
    message: str = ""    # why it failed: the assertion's message, else its source line; the status passed


def app_stem(path: Path) -> str:
    """ring_v2 for ring_v2.xml, ring_v2.xml.gz or ring_v2.py."""
    for suffix in (*SUFFIXES, ".py"):
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.stem


def load_module(path: Path, name: str) -> ModuleType:
    """The Python file at `path`, as a module named `name`."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def checks_of(module: ModuleType) -> list[tuple[str, Callable[[dict], None]]]:
    """(report name, function) of every check_* function, in file order."""
    return [(title(f), f) for name, f in vars(module).items() if name.startswith(PREFIX) and callable(f)]


def title(f: Callable) -> str:
    """A checker's name in reports: its docstring's first line, else its name."""
    doc = (f.__doc__ or "").strip()
    return doc.splitlines()[0].strip() if doc else f.__name__


class Checker:
    """The checker file of one application, loaded."""

    def __init__(self, xml: Path, py: Path):
        self.xml, self.py = xml, py
        self.name = app_stem(xml)
        try:
            self.module = load_module(py, f"pstack_check_{self.name}")
        except Exception as e:           # the user's file: any exception is theirs to see
            raise BadInput(f"importing the checker raised {last_line(e)}", str(py)) from None
        self.checks = checks_of(self.module)
        if not self.checks:
            raise BadInput(f"no {PREFIX}* functions", str(py))

    @classmethod
    def of(cls, path: str | Path, xml: str | Path | None = None) -> "Checker":
        """The checker of an application given as its .xml or its .py (the
        other found beside it, unless `xml` names the application)."""
        path = Path(path)
        if not path.is_file():
            raise BadInput(f"{path}: no such file")
        if path.suffix == ".py":
            return cls(Path(xml) if xml else beside(path, SUFFIXES), path)
        return cls(path, beside(path, (".py",)))

    def attribute(self, name: str, default):
        return getattr(self.module, name, default)

    @property
    def options(self) -> dict:
        return dict(self.attribute("options", {}))

    @property
    def expect_status(self) -> str:
        return self.attribute("expect_status", "exit")

    @property
    def schedule_independent(self) -> bool:
        """Its checkers pass under every schedule (random orders)."""
        return self.attribute("schedule_independent", True)

    @property
    def exact_answer(self) -> bool:
        """Its whole answer (states, status, exit code, deliveries) is the
        same under every schedule (split runs can be compared with psim's)."""
        return self.attribute("exact_answer", self.schedule_independent)

    @property
    def split_exact(self) -> bool:
        """Its whole answer is also the same split into regions.  Not so for
        a supervisor app whose answer counts the supervisor's ticks (rounds
        are per region when split) or that exits with messages still in
        flight between regions (a split run stops them where they are)."""
        return self.attribute("split_exact", self.exact_answer)

    @property
    def split_status(self) -> set[str]:
        """The statuses a split run may end with (for apps not split exact)."""
        return set(self.attribute("split_status", {self.expect_status}))

    def externals(self):
        """A fresh engine for its external devices (externals()), or None."""
        factory = self.attribute("externals", None)
        return factory() if factory else None

    def supervisor(self):
        """A fresh engine that runs its supervisor in Python (supervisor()), or None."""
        factory = self.attribute("supervisor", None)
        return factory() if factory else None

    def run(self, options: dict | None = None, externals=None, supervisor=None) -> dict:
        """Its run in psim: its own options, then `options`; its externals()
        engine unless `externals` is given."""
        engine = externals if externals is not None else self.externals()
        return psim(str(self.xml), options={**self.options, **(options or {})}, externals=engine,
                    supervisor=supervisor)

    def verdicts(self, result: dict, statuses: Iterable[str] | None = None, status_only: bool = False) -> list[Verdict]:
        """The status check (the result's status among `statuses`, default
        expect_status), then, if it passed and not status_only, every
        check_* function's verdict."""
        expected = sorted(statuses or {self.expect_status})
        status = result.get("status")
        if status not in expected:
            why = f"ended {status!r}, expected {' or '.join(map(repr, expected))}"
            return [Verdict("status", False, why + (f": {result['error']}" if result.get("error") else ""))]
        first = Verdict("status", True, status)
        return [first] if status_only else [first, *(verdict(name, f, result) for name, f in self.checks)]


def verdict(name: str, f: Callable[[dict], None], result: dict) -> Verdict:
    try:
        f(result)
    except Exception as e:               # a checker's own bug (KeyError...) fails it too
        return Verdict(name, False, failure_message(e))
    return Verdict(name, True)


def failure_message(e: BaseException) -> str:
    """An assertion's message; for a bare `assert`, its source line; for
    another exception, its type and text."""
    text = str(e)
    if isinstance(e, AssertionError):
        if text:
            return text
        frames = traceback.extract_tb(e.__traceback__)
        return frames[-1].line if frames and frames[-1].line else "assertion failed"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def last_line(e: BaseException) -> str:
    return traceback.format_exception_only(e)[-1].strip()


def beside(path: Path, suffixes: tuple[str, ...]) -> Path:
    """The file next to `path` with its stem and one of `suffixes`."""
    for suffix in suffixes:
        other = path.with_name(app_stem(path) + suffix)
        if other.is_file():
            return other
    raise BadInput(f"no {' or '.join(app_stem(path) + s for s in suffixes)} beside it", str(path))


def has_checks(py: Path) -> bool:
    """Does this file define check_* functions?  Read, not imported: a
    folder's other Python files are not run to find out."""
    return any(line.startswith(f"def {PREFIX}") for line in py.read_text(errors="replace").splitlines())


def find(paths: Iterable[str | Path]) -> list[Checker]:
    """The checkers of the applications at `paths`: each an app's .xml or
    its .py, or a folder searched (with its subfolders) for every X.xml
    beside an X.py with check_* functions."""
    found: dict[Path, Checker] = {}
    for path in map(Path, paths):
        if path.is_dir():
            for xml in sorted(p for s in SUFFIXES for p in path.rglob("*" + s)):
                py = xml.with_name(app_stem(xml) + ".py")
                if py.is_file() and has_checks(py) and xml.resolve() not in found:
                    found[xml.resolve()] = Checker(xml, py)
        else:
            checker = Checker.of(path)
            found.setdefault(checker.xml.resolve(), checker)
    if not found:
        raise BadInput(f"no applications with checkers in {', '.join(map(str, paths))}")
    return list(found.values())
