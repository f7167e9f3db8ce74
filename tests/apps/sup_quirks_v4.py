"""The spec's sup_quirks probe: the reply delivers the device's own message
(7, 8), not the supervisor's `reply` buffer (1007, 1008); <OnStop> never
runs; the run ends idle after 12 ticks (round 0 active, then 11 idle
rounds with 10 hardware-idle rounds between them) and the end-of-run call
runs the OnSupervisorIdle body a 13th time."""

split_exact = False      # it counts the supervisor's ticks, which are per region when split

expect_status = "idle"


def check_states(result):
    assert result["states"] == {"d0": {"sent": 1, "got": 7, "nrecv": 1},
                                "d1": {"sent": 1, "got": 8, "nrecv": 1}}, result["states"]


def check_log(result):
    lines = [text for who, _, text in result["log"] if who == "__supervisor__"]
    assert lines == [f"IDLE {i}" for i in range(1, 14)], lines
    assert result["metrics"]["Hardware idle rounds"] == 10
