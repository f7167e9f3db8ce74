"""The applications in tests/apps and what their checkers expect."""
from pathlib import Path

from psim.check import Checker, load_module

APPS_DIR = Path(__file__).parent.parent / "apps"
APPS = sorted(APPS_DIR.glob("*.xml"))
BAD = sorted((APPS_DIR / "bad").glob("*.xml"))
EXAMPLES = APPS_DIR.parent.parent / "docs" / "examples"


def checker(app: Path):
    """Its checker file (tests/apps/X.py beside X.xml), as a module."""
    return Checker.of(app).module


def example(name: str):
    """A worked example of docs/engines.md (docs/examples/NAME.py)."""
    return load_module(EXAMPLES / f"{name}.py", f"example_{name}")


def check(app: Path, result: dict) -> None:
    """Assert the run ended as the checker expects and passes every check_*
    (psim/check.py: the status, then each checker, named by its docstring)."""
    failed = [v for v in Checker.of(app).verdicts(result) if not v.passed]
    assert not failed, "; ".join(f"{v.name}: {v.message}" for v in failed)


# The checker's attributes and their defaults are psim/check.py's (Checker).
def schedule_independent(app: Path) -> bool:
    return Checker.of(app).schedule_independent


def exact_answer(app: Path) -> bool:
    return Checker.of(app).exact_answer


def split_exact(app: Path) -> bool:
    return Checker.of(app).split_exact


def options(app: Path) -> dict:
    return Checker.of(app).options


def externals(app: Path):
    return Checker.of(app).externals()


def supervisor(app: Path):
    return Checker.of(app).supervisor()


def expectations(bad: Path) -> list[str]:
    """The `<!-- expect: a | b -->` parts on a bad file's second line."""
    line = bad.read_text().splitlines()[1]
    assert "expect:" in line, f"{bad.name}: second line must be <!-- expect: ... -->"
    body = line.split("expect:", 1)[1].rsplit("-->", 1)[0]
    return [part.strip() for part in body.split(" | ") if part.strip()]
