"""The debugger on psim runs (docs/debugging.md), through its API
(pcli.debugger.local) and the `psim --debug` / `--break` command: exact
steps, conditional breakpoints, state read and changed, messages injected
and pending, and runs that end exactly as they do undebugged."""
from __future__ import annotations

import subprocess
import sys

import pytest

from appcases import APPS, APPS_DIR, checker, options
from pcli.debugger import local
from psim import psim
from psim.debug import DebugError, parse_break

RING = str(APPS_DIR / "ring_v2.xml")
PSIM = [sys.executable, "-m", "psim"]
# apps whose run needs nothing but psim (no engine for externals), and no
# timeout to end it (a debugged run has none: time stands still at a stop)
PLAIN = [a for a in APPS if "<ExtI" not in a.read_text() and "timeout" not in options(a)]
HEAT_FIELDS = {"v", "round"}


@pytest.fixture
def debug():
    """local(), and every session it made closed at the end (a paused run's thread stopped)."""
    made = []

    def open_session(*args, **kwargs):
        made.append(local(*args, **kwargs))
        return made[-1]
    yield open_session
    for s in made:
        s.close()


def counters(s) -> dict:
    return {d: s.state(d)["counter"] for d in ("n0", "n1", "n2", "n3")}


def answer(res: dict) -> tuple:
    m = res["metrics"]
    return res["states"], res["status"], res.get("error"), m["Exit code"], m["Delivered messages"], m["Sends"]


def test_steps_are_exact_from_the_first_event(debug):
    s = debug(RING)
    assert s.where().reason == "start" and counters(s) == {"n0": 0, "n1": 0, "n2": 0, "n3": 0}
    stop = s.step(1)
    assert (stop.events, stop.event["handler"], stop.event["device"]) == (1, "init", "n1")
    assert s.state("n0")["counter"] == 1                  # n0's OnInit ran, nobody else's
    stop = s.step(3)                                      # three more OnInits
    assert (stop.events, stop.event["handler"], stop.event["device"], stop.event["pin"]) == \
        (4, "send", "n0", "toggle_out")
    stop = s.step(2)                                      # n0's send, then n1's delivery (fixed order: at once)
    assert (stop.events, stop.event["handler"], stop.event["device"]) == (6, "send", "n1")
    assert counters(s) == {"n0": 1, "n1": 1, "n2": 0, "n3": 0}
    assert s.finish()["metrics"]["Delivered messages"] == 40


def test_a_conditional_breakpoint_stops_before_the_handler_with_its_message(debug):
    s = debug(RING)
    n = s.break_on(device="n2", pin="toggle_in", when="counter == 5")
    stop = s.cont()
    assert (stop.reason, stop.breakpoint) == ("break", n)
    assert stop.event == {"handler": "receive", "device": "n2", "type": "node", "pin": "toggle_in",
                          "message": {"src": 1, "dst": 0xFFFFFFFF}}
    assert counters(s) == {"n0": 6, "n1": 6, "n2": 5, "n3": 5}
    assert s.cont().reason == "end"                        # counter is 5 once: no second stop
    assert answer(s.result()) == answer(psim(RING))


@pytest.mark.parametrize("spec, where", [
    ("* handler=send", ("send", "n0")),
    ("n3", ("init", "n3")),
    ("*:toggle_in if msg.src == 2", ("receive", "n3")),
    ("type=node handler=receive if device == 'n0'", ("receive", "n0")),
])
def test_breakpoints_on_types_pins_handlers_and_messages(spec, where, debug):
    s = debug(RING)
    s.break_on(**vars(parse_break(spec)))
    stop = s.cont()
    assert (stop.event["handler"], stop.event["device"]) == where


def test_changed_state_and_an_injected_message_change_the_run(debug):
    s = debug(RING)
    s.break_on(device="n2", pin="toggle_in", when="counter == 5")
    s.cont()
    s.clear()
    assert s.set_state("n2", counter=9)["counter"] == 9
    s.inject("n0", "toggle_in", src=3, dst=0xFFFFFFFF)
    assert s.pending("n0") == [{"pin": "toggle_in", "message": {"src": 3, "dst": 0xFFFFFFFF},
                                "source": "(injected)"}]
    stop = s.step(1)                                       # n2's delivery was under way: it runs first
    assert s.state("n2")["counter"] == 10 and (stop.event["device"], stop.event["pin"]) == ("n0", "toggle_in")
    assert stop.event["message"]["src"] == 3               # then the injected message
    res = s.finish()
    # n2 reached 10 early: its next delivery ends the run, sooner than the 40 of the plain ring
    assert res["status"] == "exit" and res["metrics"]["Delivered messages"] < 40


def test_messages_in_flight_are_pending_in_random_order(debug):
    opts = {"order": "random", "seed": 3}
    s = debug(APPS_DIR / "heat_v4.xml", opts)
    s.break_on(handler="receive")
    seen = 0
    for _ in range(20):
        stop = s.cont()
        for dev in s.names():
            for m in s.pending(dev):
                assert (m["pin"], m["source"], set(m["message"])) == ("in", "(in flight)", HEAT_FIELDS)
                seen += 1
    assert seen > 0
    s.clear()
    assert answer(s.finish()) == answer(psim(str(APPS_DIR / "heat_v4.xml"), options=opts))


@pytest.mark.parametrize("order", [{}, {"order": "random", "seed": 2}], ids=["fixed", "random"])
@pytest.mark.parametrize("app", PLAIN, ids=lambda p: p.stem)
def test_a_debugged_run_ends_as_an_undebugged_one(app, order, debug):
    opts = {**options(app), **order}
    if order and not getattr(checker(app), "schedule_independent", True):
        opts.pop("seed", None)
    s = debug(app, opts)
    s.break_on(device=None, when="False")                  # matched in C everywhere, never holds
    assert s.cont().reason == "end"
    assert answer(s.result()) == answer(psim(str(app), options=opts))


@pytest.mark.parametrize("call, message", [
    (lambda s: s.break_on(device="nX"), "the process has no device 'nX'"),
    (lambda s: s.break_on(device="n1", pin="nope"), "device 'n1' has no pin 'nope'"),
    (lambda s: s.break_on(handler="OnLunch"), "no handler kind 'OnLunch'"),
    (lambda s: s.break_on(when="counter =="), "is not a Python expression"),
    (lambda s: s.inject("n1", "toggle_out"), "has no input pin 'toggle_out': it has __init__, toggle_in"),
    (lambda s: s.set_state("n1", speed=3), "has no state field speed"),
    (lambda s: s.step(0), "at least 1"),
    (lambda s: s.step(1, region=4), "no region 4"),
])
def test_bad_requests_say_why_and_the_session_goes_on(call, message, debug):
    s = debug(RING)
    with pytest.raises(DebugError, match=message.replace("(", r"\(")):
        call(s)
    assert s.step(1).events == 1


def test_psim_debug_takes_commands_on_its_prompt():
    script = "break n2:toggle_in if counter == 5\ncont\nstate n2\nwatch n1 counter\nstep 2\nset n3 counter=1\n" \
             "inject n0 toggle_in src=7\npending n0\nnosuch n0\nquit\n"
    out = subprocess.run(PSIM + ["--debug", "-q", RING], input=script, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout
    assert "breakpoint 0: n2:toggle_in if counter == 5" in lines
    assert "break at breakpoint 0: region 0, receive n2:toggle_in message {'src': 1" in lines
    assert '"counter": 5' in lines
    assert "step: region 0, receive n3:toggle_in" in lines and '  n1: {"counter": 6}' in lines
    assert "toggle_in (injected): {\"src\": 7" in lines
    assert "Exit   0 (exit)" in lines
    assert "nosuch is not a recognized command" in out.stderr


def test_psim_break_runs_to_the_breakpoint_first():
    out = subprocess.run(PSIM + ["-q", "--break", "n3 if counter == 2", RING], input="where\nquit\n",
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "break at breakpoint 0: region 0, send n3:toggle_out (after 18 events)" in out.stdout


def test_the_prompt_completes_devices_and_pins():
    from pcli.debugshell import DebugShell
    with local(RING) as s:
        shell = DebugShell(s)
        assert shell.complete_break("n", "break n", 6, 7) == ["n0", "n1", "n2", "n3"]
        assert shell.complete_break("n2:to", "break n2:to", 6, 11) == ["n2:toggle_in", "n2:toggle_out"]
        assert shell.complete_inject("toggle_i", "inject n2 toggle_i", 10, 18) == ["toggle_in"]
        assert shell.complete_state("n3", "state n3", 6, 8) == ["n3"]
        s.finish()


def test_a_cleared_breakpoint_leaves_the_others_their_numbers(debug):
    s = debug(RING)
    s.break_on(device="n1")
    s.break_on(device="n3", handler="receive")
    s.clear(0)
    stop = s.cont()
    assert (stop.breakpoint, stop.event["device"], stop.event["handler"]) == (1, "n3", "receive")
