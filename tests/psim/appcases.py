"""The applications in tests/apps and what their checkers expect."""
import importlib.util
from pathlib import Path

APPS_DIR = Path(__file__).parent.parent / "apps"
APPS = sorted(APPS_DIR.glob("*.xml"))
BAD = sorted((APPS_DIR / "bad").glob("*.xml"))
EXAMPLES = APPS_DIR.parent.parent / "docs" / "examples"


def load(path: Path, name: str):
    """The Python file at `path`, as a module."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def checker(app: Path):
    return load(app.with_suffix(".py"), f"check_{app.stem}")


def example(name: str):
    """A worked example of docs/engines.md (docs/examples/NAME.py)."""
    return load(EXAMPLES / f"{name}.py", f"example_{name}")


def check(app: Path, result: dict) -> None:
    """Assert the run ended as the checker expects and pass every check_*."""
    module = checker(app)
    expected = getattr(module, "expect_status", "exit")
    assert result["status"] == expected, result.get("error")
    checks = [f for name, f in vars(module).items() if name.startswith("check_")]
    assert checks, f"{app.name} has no check_* functions"
    for f in checks:
        f(result)


def schedule_independent(app: Path) -> bool:
    """Its checkers pass under every schedule (random orders)."""
    return getattr(checker(app), "schedule_independent", True)


def exact_answer(app: Path) -> bool:
    """Its whole answer (states, status, exit code, deliveries) is the same
    under every schedule (split runs are compared with psim's)."""
    return getattr(checker(app), "exact_answer", schedule_independent(app))


def split_exact(app: Path) -> bool:
    """Its whole answer is also the same split into regions.  Not so for a
    supervisor app whose answer counts the supervisor's ticks (rounds are
    per region when split) or that exits with messages still in flight
    between regions (a split run stops them where they are)."""
    return getattr(checker(app), "split_exact", exact_answer(app))


def options(app: Path) -> dict:
    return dict(getattr(checker(app), "options", {}))


def externals(app: Path):
    """A fresh application engine for its external devices (the checker's
    externals()), or None when it has none."""
    factory = getattr(checker(app), "externals", None)
    return factory() if factory else None


def supervisor(app: Path):
    """A fresh application engine that runs its supervisor in Python (the
    checker's supervisor()), or None when it has none."""
    factory = getattr(checker(app), "supervisor", None)
    return factory() if factory else None


def expectations(bad: Path) -> list[str]:
    """The `<!-- expect: a | b -->` parts on a bad file's second line."""
    line = bad.read_text().splitlines()[1]
    assert "expect:" in line, f"{bad.name}: second line must be <!-- expect: ... -->"
    body = line.split("expect:", 1)[1].rsplit("-->", 1)[0]
    return [part.strip() for part in body.split(" | ") if part.strip()]
