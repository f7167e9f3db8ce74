"""The end of an idle run: every device sends once in round 0, then 11 idle
rounds tick (with 10 hardware-idle rounds between them, which the devices'
OnHardwareIdle counts); the end-of-run call runs the OnSupervisorIdle body
a 13th time, and its stop_application() makes the run fail, as the
reference's "stop_application within onStop" does (status 1)."""

split_exact = False      # it counts the supervisor's ticks, which are per region when split
split_status = {"exit", "failed"}   # split, its 13th tick is an ordinary one or the stop call, as rounds fall

expect_status = "failed"


def check_states(result):
    assert result["states"] == {d: {"sent": 1, "hw": 10} for d in ("d0", "d1", "d2")}, result["states"]


def check_failure(result):
    assert result["metrics"]["Exit code"] == 1
    assert "end-of-run call" in result["error"] and "supervisor 'sup'" in result["error"], result["error"]
    assert ["__supervisor__", 0, "tick 13: got 3"] in result["log"], result["log"]
