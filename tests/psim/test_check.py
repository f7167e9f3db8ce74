"""`psim --check`: an application run in psim, then its checker file's
check_* functions on the result, each reported PASS or FAIL (named by its
docstring, with the assertion's message); exit status 0, 1 or 2."""
import shutil
import subprocess
import sys

import pytest

from appcases import APPS_DIR
from psim.check import find

WRONG = '''"""ring_v2 with checkers that are wrong on purpose."""


def check_delivered(result):
    """Forty-one deliveries"""
    assert result["metrics"]["Delivered messages"] == 41, f"delivered {result['metrics']['Delivered messages']}"


def check_bare(result):
    assert result["states"]["n0"]["counter"] == 11


def check_right(result):
    """every node counted to ten"""
    assert all(s["counter"] == 10 for s in result["states"].values())
'''


def psim_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "psim", "--check", *args], capture_output=True, text=True,
                          timeout=120)


def app_with(tmp_path, checker: str, name: str = "ring_v2"):
    """ring_v2.xml copied to tmp_path as NAME.xml, with `checker` beside it as NAME.py."""
    shutil.copy(APPS_DIR / "ring_v2.xml", tmp_path / f"{name}.xml")
    (tmp_path / f"{name}.py").write_text(checker)
    return tmp_path / f"{name}.py"


def test_a_passing_app_passes_every_checker():
    done = psim_check(str(APPS_DIR / "ring_v2.py"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["PASS  status: exit", "PASS  check_states", "PASS  check_metrics",
                                        "PASS  check_log", "ring_v2: 4 passed, 0 failed"]


def test_a_failing_checker_fails_with_its_name_and_message(tmp_path):
    done = psim_check(str(app_with(tmp_path, WRONG)), str(tmp_path / "ring_v2.xml"))
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        "PASS  status: exit",
        "FAIL  Forty-one deliveries: delivered 40",
        'FAIL  check_bare: assert result["states"]["n0"]["counter"] == 11',     # no message: its line
        "PASS  every node counted to ten",
        "ring_v2: 2 passed, 2 failed"]


def test_the_checker_s_options_and_expected_status_apply(tmp_path):
    """log_v3's options give level 2 (its checker wants the level-2 lines);
    an app expected to fail passes when it fails; a wrong expect_status fails."""
    assert psim_check(str(APPS_DIR / "log_v3.py")).returncode == 0
    assert psim_check(str(APPS_DIR / "assert_v3.py")).returncode == 0
    done = psim_check(str(app_with(tmp_path, 'expect_status = "idle"\n\ndef check_x(result):\n    pass\n')))
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == "FAIL  status: ended 'exit', expected 'idle'"


def test_command_line_options_override_the_checker_s():
    """--level 1 over log_v3's level 2: its checker misses the level-2 lines."""
    done = psim_check(str(APPS_DIR / "log_v3.py"), "--level", "1")
    assert done.returncode == 1
    assert "FAIL  check_lines: " in done.stdout


def test_the_checker_s_externals_serve_the_app():
    done = psim_check(str(APPS_DIR / "ext_echo_v3.py"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ext_echo_v3: 3 passed, 0 failed" in done.stdout


@pytest.mark.parametrize("checker, error", [
    ("x = 1\n", "ring_v2.py: no check_* functions"),
    ("import nosuchmodule\n", "ring_v2.py: importing the checker raised ModuleNotFoundError: "
                               "No module named 'nosuchmodule'"),
])
def test_bad_checker_files_are_bad_input(tmp_path, checker, error):
    done = psim_check(str(app_with(tmp_path, checker)))
    assert done.returncode == 2
    assert error in done.stderr


def test_a_checker_without_its_app_is_bad_input(tmp_path):
    (tmp_path / "lonely.py").write_text("def check_a(result):\n    pass\n")
    done = psim_check(str(tmp_path / "lonely.py"))
    assert done.returncode == 2
    assert "lonely.py: no lonely.xml or lonely.xml.gz beside it" in done.stderr


def test_a_split_run_is_refused():
    done = psim_check(str(APPS_DIR / "ring_v2.py"), "--rmap", '{"n1": 1}')
    assert done.returncode == 2
    assert "--check runs the whole application" in done.stderr


def test_a_folder_holds_the_apps_beside_checker_files(tmp_path):
    """Subfolders too; an .xml without a .py, or beside a .py without check_*, is not an app with a checker."""
    (tmp_path / "sub").mkdir()
    app_with(tmp_path, WRONG)
    app_with(tmp_path / "sub", WRONG, "deeper")
    shutil.copy(APPS_DIR / "edges_v3.xml", tmp_path / "alone.xml")
    app_with(tmp_path, "def helper():\n    pass\n", "helper")
    assert [c.name for c in find([tmp_path])] == ["ring_v2", "deeper"]


def test_psim_check_needs_no_cluster():
    """psim is the layer below pcli: its checker code imports neither pcli nor Redis."""
    code = "import sys, psim.check; print(sorted({'pcli', 'redis', 'zmq'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr
