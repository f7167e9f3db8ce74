"""Empty message type, absent graph Properties, a device type with no
Properties and no State. 3 ticks reach c and b: 6 deliveries, 3 log lines
from b. The blank device's state is empty."""

expect_status = "idle"


def check_states(result):
    s = result["states"]
    assert s["t"]["sent"] == 3 and s["c"]["got"] == 3, s
    assert s.get("b", {}) == {}, s.get("b")


def check_log_and_metrics(result):
    assert result["status"] == "idle", (result["status"], result.get("error"))
    assert result["metrics"]["Delivered messages"] == 6, result["metrics"]
    assert [tuple(x) for x in result["log"]] == [("b", 1, "blank got a tick")] * 3, result["log"]
