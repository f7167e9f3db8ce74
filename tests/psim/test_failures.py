"""Handlers that crash, loop forever or run too long end as failed runs with
a clear message: never a traceback, never a hang."""
import resource
import subprocess
import sys

from psim import psim
from tinyapp import ring_app


def test_segfault_in_a_handler_fails_the_run_naming_device_and_handler():
    app = ring_app("segv", receive="if (deviceState->got == 2) { volatile int* p = 0; *p = 1; }")
    res = psim(app)
    assert res["status"] == "failed"
    assert res["metrics"]["Exit code"] == 1
    assert "crashed" in res["error"] and "Segmentation" in res["error"]
    assert "device 'd" in res["error"] and "OnReceive of pin 'in'" in res["error"]


def test_endless_loop_is_stopped_by_the_timeout():
    app = ring_app("loop", receive="if (deviceState->got == 1) for (volatile int i = 0; ; i++) {}")
    res = psim(app, options={"timeout": 0.5})
    assert res["status"] == "failed"
    assert "timed out after 0.5 s" in res["error"]
    assert "OnReceive" in res["error"]


def test_step_limit_fails_the_run():
    app = ring_app("steps")
    res = psim(app, options={"max_steps": 5})
    assert res["status"] == "failed"
    assert res["error"] == "step limit of 5 reached"
    assert res["metrics"]["Steps"] == 5


def test_failed_assert_names_device_handler_and_line():
    app = ring_app("assert", receive="assert(message->v < 2);")
    res = psim(app)
    line = next(i for i, text in enumerate(app.splitlines(), 1) if "assert(message" in text)
    assert res["status"] == "failed"
    assert "assertion 'message->v < 2' failed in device 'd" in res["error"]
    assert f"<string>:{line}" in res["error"]


def test_the_process_survives_a_crash_and_runs_again():
    crash = ring_app("again", init="if (deviceProperties == 0) {} volatile int* p = 0; *p = 0;")
    assert psim(crash)["status"] == "failed"
    assert psim(ring_app("fine"))["status"] == "idle"


def test_cli_crash_is_a_message_not_a_traceback(tmp_path):
    app = tmp_path / "crash.xml"
    app.write_text(ring_app("cli_segv", receive="volatile int* p = 0; *p = 1;"))
    done = subprocess.run([sys.executable, "-m", "psim", str(app), "-q"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert "Error  handler crashed (Segmentation fault)" in done.stdout


def test_cli_endless_loop_with_timeout(tmp_path):
    app = tmp_path / "loop.xml"
    app.write_text(ring_app("cli_loop", init="for (;;) {}"))
    done = subprocess.run([sys.executable, "-m", "psim", str(app), "--timeout", "0.3", "-q"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "timed out after 0.3 s, in device 'd0' (type 'node'), handler OnInit" in done.stdout


def test_cli_memory_limit_stops_an_allocating_handler(tmp_path):
    app = tmp_path / "grow.xml"
    app.write_text(ring_app("cli_grow", shared="#include <cstring>\n",
                            receive="for (;;) { char* p = new char[1 << 20]; memset(p, 1, 1 << 20); }"))
    done = subprocess.run([sys.executable, "-m", "psim", str(app), "--memory-mb", "64", "-q"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert ("Error  memory limit of 64 MB exceeded in device 'd1' (type 'node'), handler OnReceive of pin 'in'"
            in done.stdout)


def test_memory_mb_limits_a_psim_call_only_while_it_runs():
    before = resource.getrlimit(resource.RLIMIT_DATA)
    res = psim(ring_app("grow_vec", shared="#include <vector>\n", receive="std::vector<char> v; for (;;) v.push_back(1);"),
               options={"memory_mb": 64})
    assert res["status"] == "failed"
    assert res["error"].startswith("memory limit of 64 MB exceeded in device 'd1'")
    assert resource.getrlimit(resource.RLIMIT_DATA) == before
    assert psim(ring_app("fine"), options={"memory_mb": 64})["status"] == "idle"
