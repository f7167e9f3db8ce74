"""psim on a terminal: its progress on stderr, Ctrl-C, --version, --help,
and the usage errors, through the installed `psim` command."""
from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import pytest

from tinyapp import endless_app, ring_app

PSIM = str(Path(sys.executable).parent / "psim")
REPO = Path(__file__).resolve().parents[2]
APPS = REPO / "tests" / "apps"
DEADLINE = 120                 # seconds for psim to get going (a first compile of the app's handlers)
PROMPT = 2.0                   # seconds from Ctrl-C to psim's exit

# Every receipt costs ~50 us: a call of the engine's former 1M events was a minute that Ctrl-C waited for.
SLOW_FOREVER = ring_app("slow_forever", receive="deviceState->n = 0; for (volatile int i = 0; i < 200000; i++) {}")
# g++ takes seconds over these (constant evaluation), so that Ctrl-C meets psim compiling.
SLOW_SUM = "constexpr unsigned slow_sum(unsigned k) { unsigned s = k; for (unsigned j = 0; j < 5; j++) " \
           "for (unsigned i = 0; i < 100000u; i++) s += i ^ (s >> 3); return s; }\n" + \
           "".join(f"static_assert(slow_sum({k}) != 1, \"\");\n" for k in range(8))


def written(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


class Stream:
    """What a pipe of a running process has written so far, read by a thread."""

    def __init__(self, pipe):
        self.data, self.pipe = b"", pipe
        self.more = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while block := os.read(self.pipe.fileno(), 1 << 16):
            with self.more:
                self.data += block
                self.more.notify_all()

    def wait_for(self, text: str, seconds: float = DEADLINE) -> None:
        end = time.monotonic() + seconds
        with self.more:
            while text.encode() not in self.data:
                left = end - time.monotonic()
                assert left > 0, f"no {text!r} in {seconds} s; so far: {self.data[-500:]!r}"
                self.more.wait(left)

    def text(self) -> str:
        self.thread.join(10)
        return self.data.decode(errors="replace")


@contextmanager
def started(*args: str):
    """psim as a terminal's foreground job (a session and process group of
    its own, so that Ctrl-C can go to the whole group as a terminal sends
    it); killed with its group if a test leaves it running."""
    proc = subprocess.Popen([PSIM, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        yield proc, Stream(proc.stdout), Stream(proc.stderr)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def ctrl_c(proc: subprocess.Popen) -> float:
    """Ctrl-C to psim's process group; the seconds until psim exited."""
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(PROMPT + 3)
    except subprocess.TimeoutExpired:
        pytest.fail(f"psim still running {PROMPT + 3} s after Ctrl-C")
    return time.monotonic() - sent


@pytest.mark.parametrize("threads", ["1", "2"])
def test_ctrl_c_stops_a_run_at_once_and_r_prints_what_it_had(tmp_path, threads):
    app = written(tmp_path, "slow.xml", SLOW_FOREVER)
    with started(app, "-r", "--progress", "--threads", threads) as (proc, out, err):
        err.wait_for("deliveries")            # the run's progress line: it is running
        took = ctrl_c(proc)
        res = json.loads(out.text())
    assert proc.returncode == 130
    assert took < PROMPT
    assert res["status"] == "interrupted" and "error" not in res
    assert res["metrics"]["Exit code"] == 130
    assert res["metrics"]["Delivered messages"] > 0
    assert sum(state["got"] for state in res["states"].values()) == res["metrics"]["Delivered messages"]


def test_ctrl_c_in_human_mode_says_interrupted(tmp_path):
    app = written(tmp_path, "slow.xml", SLOW_FOREVER)
    with started(app, "-q", "--progress") as (proc, out, err):
        err.wait_for("deliveries")
        ctrl_c(proc)
        lines = out.text().splitlines()
    assert proc.returncode == 130
    assert lines[0] == "Exit   130 (interrupted)"
    assert "Metric Steps: " in "\n".join(lines)


def test_ctrl_c_while_compiling_stops_at_once(tmp_path):
    app = written(tmp_path, "slow_compile.xml", ring_app("slow_compile", shared=SLOW_SUM))
    with started(app, "-r", "--progress", "-t", str(tmp_path / "build")) as (proc, out, err):
        err.wait_for("compiling handlers")
        err.wait_for("devices")               # read, and waiting for g++
        took = ctrl_c(proc)
        assert out.text() == ""               # no run, no result
    assert proc.returncode == 130
    assert took < PROMPT
    assert "psim: interrupted" in err.text()


def on_a_terminal(*args: str) -> tuple[int, str, str]:
    """psim with stderr on a pseudo-terminal, stdout a pipe: (status, stdout, what the terminal showed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([PSIM, *args], stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    shown = b""
    try:
        out = Stream(proc.stdout)
        while True:
            ready, _, _ = select.select([master], [], [], DEADLINE)
            assert ready, "the terminal saw nothing for a long time"
            try:
                block = os.read(master, 1 << 16)
            except OSError:                   # EIO: psim exited, the terminal is closed
                break
            if not block:
                break
            shown += block
        proc.wait(DEADLINE)
        return proc.returncode, out.text(), shown.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        os.close(master)


def test_a_terminal_shows_the_phases_and_stdout_stays_the_result():
    status, out, shown = on_a_terminal(str(APPS / "ring_v2.xml"))
    assert status == 0
    for phase in ("compiling handlers", "reading ring_v2.xml", "4 devices, 4 edges", "running", "40 deliveries"):
        assert phase in shown
    assert "Exit   0 (exit)" in out.splitlines() and "Log    n0: counter = 1" in out.splitlines()
    assert "\x1b" not in out and "running" not in out


@pytest.mark.parametrize("mode", [["-q"], ["-r"], ["--inspect", "-r"], ["--no-progress"]])
def test_quiet_modes_show_nothing_on_the_terminal(mode):
    status, out, shown = on_a_terminal(str(APPS / "ring_v2.xml"), *mode)
    assert status == 0 and out
    assert shown == ""


def test_no_progress_without_a_terminal_unless_asked():
    plain = subprocess.run([PSIM, str(APPS / "ring_v2.xml"), "-q"], capture_output=True, text=True, timeout=DEADLINE)
    assert plain.returncode == 0 and plain.stderr == ""
    asked = subprocess.run([PSIM, str(APPS / "ring_v2.xml"), "-r", "--progress"], capture_output=True, text=True,
                           timeout=DEADLINE)
    assert asked.returncode == 0
    assert "running" in asked.stderr and "40 deliveries" in asked.stderr
    assert json.loads(asked.stdout)["status"] == "exit"


def test_version_is_the_packages():
    done = subprocess.run([PSIM, "--version"], capture_output=True, text=True, timeout=DEADLINE)
    assert done.returncode == 0
    assert done.stdout.strip() == f"psim (pstack) {version('pstack')}"


ENV = re.compile(r"""os\.environ(?:\.get\(|\[)["'](\w+)|getenv\("(\w+)"\)""")     # a variable read, in Python or C


def test_help_lists_the_exit_codes_and_every_environment_variable_psim_reads():
    done = subprocess.run([PSIM, "--help"], capture_output=True, text=True, timeout=DEADLINE)
    assert done.returncode == 0
    epilog = done.stdout.split("exit status:", 1)[1]
    for code in ("0", "1", "2", "3", "130"):
        assert re.search(rf"^  {code} ", epilog, re.M), code
    read = {a or b for source in (REPO / "psim").rglob("*") if source.suffix in (".py", ".h", ".hpp", ".cpp")
            for a, b in ENV.findall(source.read_text())}
    assert {"PSTACK_CACHE", "PSTACK_INSTANCE_CACHE", "PSTACK_INSTANCE_CACHE_MB"} <= read
    for name in read:
        assert re.search(rf"^  {name} ", epilog.split("environment:", 1)[1], re.M), name


def test_region_without_a_region_map_is_a_usage_error():
    done = subprocess.run([PSIM, str(APPS / "ring_v2.xml"), "--region", "1"], capture_output=True, text=True,
                          timeout=DEADLINE)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines()[-1] == "psim: error: --region N runs one region of a region map: give --rmap too"


def test_a_failed_run_prints_error_then_exit_as_the_guide_shows():
    done = subprocess.run([PSIM, str(APPS / "assert_v3.xml"), "-q"], capture_output=True, text=True, timeout=DEADLINE)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Error  assertion") and lines[1].startswith("Exit   1 (failed)")
    guide = (REPO / "docs" / "psim.md").read_text()
    assert guide.index("\n    Error  ") < guide.index("\n    Exit   ")


def test_graphs_without_arguments_prints_usage():
    done = subprocess.run([sys.executable, str(REPO / "bench" / "graphs.py")], capture_output=True, text=True,
                          timeout=DEADLINE)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("usage: python bench/graphs.py")


def test_a_reader_that_stops_early_ends_psim_without_a_traceback(tmp_path):
    app = tmp_path / "ring.xml"
    app.write_text(ring_app("pipe_reader", n=5000))        # some 300 KB of State lines: more than a pipe holds
    psim = subprocess.Popen([PSIM, str(app)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = psim.stdout.readline()                         # `psim app | head -1`
    psim.stdout.close()
    err = psim.stderr.read().decode()
    assert psim.wait(timeout=DEADLINE) == 1
    assert first.startswith(b"Log") or first.startswith(b"Exit") or first.startswith(b"Metric"), first
    assert "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.parametrize("threads", ["1", "2"])
def test_ctrl_c_stops_a_handler_that_never_returns(tmp_path, threads):
    app = written(tmp_path, "endless.xml", endless_app("endless_ctrl_c"))
    with started(app, "-r", "--progress", "--threads", threads) as (proc, out, err):
        err.wait_for("running")
        time.sleep(0.5)                       # in the first OnInit by now, for ever (not on the way into C)
        took = ctrl_c(proc)
        res = json.loads(out.text())
    assert proc.returncode == 130
    assert took < PROMPT
    assert res["status"] == "interrupted" and "error" not in res
