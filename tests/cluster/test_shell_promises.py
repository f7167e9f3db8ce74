"""What the shell promises, through the real `pcli`: py and run_pyscript
variables kept between sessions, their exit statuses, ptpython and pid
completion in tmux, --version, and failing fast when Redis is not there."""
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from importlib.metadata import version

import pytest

import pcli
from appcases import APPS_DIR
from conftest import ROOT, free_port, wait_for

RING = str(APPS_DIR / "ring_v2.xml")
PCLI = [sys.executable, "-m", "pcli"]


@pytest.fixture
def env(tmp_path, monkeypatch):
    """pcli's files in the test's folder (what a second session finds there)."""
    monkeypatch.setenv("PCLI_CONTEXT", str(tmp_path / "context.json"))
    monkeypatch.setenv("PCLI_HISTORY", str(tmp_path / "history"))
    return dict(os.environ, PYTHONPATH=str(ROOT))


def pcli_run(env: dict, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([*PCLI, *args], input=stdin, capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env=env)


@contextmanager
def tmux_pcli(env: dict, name: str):
    """`pcli` at a terminal (tmux): a function typing keys, and one reading the screen."""
    session = f"pcli-{name}-{os.getpid()}"
    exports = " ".join(f"{k}={env[k]}" for k in ("PSTACK_REDIS", "PCLI_CONTEXT", "PCLI_HISTORY", "PYTHONPATH")
                       if k in env)
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30",
                    f"cd {ROOT} && env {exports} {' '.join(PCLI)} -q -n"], check=True)
    keys = lambda *k: subprocess.run(["tmux", "send-keys", "-t", session, *k], check=True)      # noqa: E731
    screen = lambda: subprocess.run(["tmux", "capture-pane", "-t", session, "-p"],             # noqa: E731
                                    capture_output=True, text=True).stdout
    try:
        wait_for(lambda: "pcli>" in screen(), timeout=20)
        yield keys, screen
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session])


# ---- py and run_pyscript keep their variables --------------------------------------------

def test_py_lines_on_stdin_are_kept_for_the_next_session(env):
    first = pcli_run(env, stdin="py\nanswer = 6 * 7\nnames = ['a', 'b']\nimport json\nquit()\nhelp engines\n")
    assert first.returncode == 0, first.stderr
    assert "Registered engines" in first.stdout          # the shell read on after quit()
    again = pcli_run(env, "-c", "py", stdin="print(answer, names, 'json' in dir())\n")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "42 ['a', 'b'] False"    # a module is not a plain variable


def test_a_variable_too_big_to_keep_is_left_out(env):
    assert pcli_run(env, "-c", "py", stdin="small = 1\nhuge = 'x' * (2 << 20)\n").returncode == 0
    again = pcli_run(env, "-c", "py", stdin="print(small, 'huge' in dir())\n")
    assert again.stdout.strip() == "1 False", again.stderr


def test_a_py_line_that_raises_fails_the_command(env):
    out = pcli_run(env, "-c", "py", stdin="kept = 1\n1 / 0\n")
    assert out.returncode == 1 and "ZeroDivisionError" in out.stderr
    assert pcli_run(env, "-c", "py", stdin="print(kept)\n").stdout.strip() == "1"


def test_run_pyscript_variables_are_kept(env, tmp_path):
    script = tmp_path / "make.py"
    script.write_text("import sys\nlevels = {'low': 1, 'high': int(sys.argv[1])}\n")
    assert pcli_run(env, "-c", f"run_pyscript {script} 9").returncode == 0
    again = pcli_run(env, "-c", "py", stdin="print(levels['high'])\n")
    assert again.stdout.strip() == "9", again.stderr


def test_run_pyscript_exit_statuses(env, tmp_path):
    raises = tmp_path / "raises.py"
    raises.write_text("before = 'kept'\n\ndef f():\n    raise KeyError('boom')\n\nf()\n")
    out = pcli_run(env, "-c", f"run_pyscript {raises}", "-c", "help engines")
    assert out.returncode == 1 and "Registered engines" not in out.stdout
    assert f'File "{raises}", line 4, in f' in out.stderr and "KeyError: 'boom'" in out.stderr
    assert "pyshell.py" not in out.stderr                     # the traceback starts at the script
    assert pcli_run(env, "-c", "py", stdin="print(before)\n").stdout.strip() == "kept"

    exits = tmp_path / "exits.py"
    exits.write_text("import sys\nsys.exit(int(sys.argv[1]) if sys.argv[1].isdigit() else sys.argv[1])\n")
    assert pcli_run(env, "-c", f"run_pyscript {exits} 3").returncode == 3
    ok = pcli_run(env, "-c", f"run_pyscript {exits} 0", "-c", "help engines")
    assert ok.returncode == 0 and "Registered engines" in ok.stdout
    told = pcli_run(env, "-c", f"run_pyscript {exits} no-input")
    assert told.returncode == 1 and "no-input" in told.stderr
    missing = pcli_run(env, "-c", f"run_pyscript {tmp_path / 'nosuch.py'}")
    assert missing.returncode == 1 and "cannot read" in missing.stderr


def test_ptpython_at_a_terminal_keeps_variables(env):
    with tmux_pcli(env, "ptpython") as (keys, screen):
        keys("py", "Enter")
        wait_for(lambda: "[F2] Menu" in screen(), timeout=20)       # ptpython's status bar
        keys("typed = 40 + 2", "Enter")
        keys("exit()", "Enter")
        wait_for(lambda: screen().rstrip().endswith("pcli>"), timeout=20)
    assert pcli_run(env, "-c", "py", stdin="print(typed)\n").stdout.strip() == "42"


# ---- completion ---------------------------------------------------------------------------

def test_pid_completion_at_a_terminal(cluster, env):
    cluster.start("e1")
    pid = pcli.run(RING, async_=True).pid
    pcli.block(pid)
    with tmux_pcli(dict(env, PSTACK_REDIS=os.environ["PSTACK_REDIS"]), "complete") as (keys, screen):
        keys("info ", "Tab")
        wait_for(lambda: f"pcli> info {pid}" in screen(), timeout=20)
        keys("Enter")
        wait_for(lambda: "state: finished" in screen(), timeout=20)
        assert "Traceback" not in screen() and "TypeError" not in screen()


# ---- --version, failing fast ----------------------------------------------------------------

@pytest.mark.parametrize("program", ["pcli", "pd", "pstack-cluster", "pstack-deploy"])
def test_version(program):
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), program), "--version"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"{program} {version('pstack')}"


def timed(env: dict, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    """pcli's outcome, and the seconds it took beyond starting up (measured
    with a command that needs no Redis: a loaded machine slows both)."""
    start = time.monotonic()
    pcli_run(env, "-c", "help engines")
    start_up = time.monotonic() - start
    start = time.monotonic()
    out = pcli_run(env, *args)
    return out, time.monotonic() - start - start_up


def test_no_redis_fails_fast_with_the_url_redacted(env):
    url = f"redis://alice:s3cret@127.0.0.1:{free_port()}/0"      # nothing listens there
    out, took = timed(dict(env, PSTACK_REDIS=url), "-c", "engines")
    assert out.returncode == 1
    assert out.stderr.strip() == (f"engines: cannot reach Redis at {url.replace('s3cret', '***')}: "
                                  "connection refused")
    assert took < 1.0, took                     # no retries, no waiting


def test_a_redis_that_does_not_answer_fails_within_seconds(env):
    with socket.socket() as host:               # its one-place accept queue filled: connecting hangs
        host.bind(("127.0.0.1", 0))
        host.listen(0)
        url = f"redis://127.0.0.1:{host.getsockname()[1]}/0"
        with socket.create_connection(host.getsockname()):
            out, took = timed(dict(env, PSTACK_REDIS=url), "-c", "engines")
    assert out.returncode == 1
    assert out.stderr.strip() == f"engines: cannot reach Redis at {url}: it did not answer in time"
    assert took < 3.0, took                     # the connect timeout (2 s), once
