"""The spec's sup_idle example: OnSupervisorIdle as a quiescence watchdog.
Counters send 2 + 3 pulses; three ticks without progress end the run with
the FAIL marker (handler_exit(1)) because 6 were expected.  In the default
order the rounds match the reference's epochs (pulses 2, 2, 1), so the
summary is the reference's `idleCalls=7`; random orders may spread the
pulses over more rounds (test_supervisors.py pins the fixed-order line)."""

split_exact = False      # it counts the supervisor's ticks, which are per region when split
import re

expect_status = "exit"


def check_states(result):
    assert result["states"] == {"c0": {"left": 0, "sent": 2}, "c1": {"left": 0, "sent": 3}}, result["states"]


def check_exit_and_log(result):
    assert result["metrics"]["Exit code"] == 1
    lines = [text for who, _, text in result["log"] if who == "__supervisor__"]
    assert len(lines) == 1 and re.fullmatch(r"sup_idle: seen=5 expect=6 idleCalls=\d+", lines[0]), lines
    assert int(lines[0].rsplit("=", 1)[1]) >= 7
