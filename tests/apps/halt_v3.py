"""Halt sink: a message delivered to the external device __halt__ ends the
run with its first field (`code`) as the exit code.

Token: a 1, b 1+2 = 3, c 3+4 = 7 -> c sends code 7 to __halt__.
(The psim command exits with status 1 here; the result dict carries 7.)
"""


def check_exit(result):
    assert result["status"] == "exit", (result["status"], result.get("error"))
    assert result["metrics"]["Exit code"] == 7, result["metrics"]


def check_states(result):
    s = result["states"]
    assert s["a"]["v"] == 1 and s["b"]["v"] == 3 and s["c"]["v"] == 7, s
    for dev in ("a", "b", "c"):
        assert s[dev]["sent"] == 1, dev
    # a to b and b to c are OnReceive calls; whether the arrival at the
    # external __halt__ counts is not fixed by the spec
    assert result["metrics"]["Delivered messages"] in (2, 3), result["metrics"]
