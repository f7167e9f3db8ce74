"""sendIndex on the first EdgeI of the file: r0 has index 1, r1 index 0.
Index 0 gets 5 (r1), index 1 gets 7 (r0)."""

expect_status = "idle"


def check_states(result):
    s = result["states"]
    assert s["r0"]["sum"] == 7 and s["r1"]["sum"] == 5, s


def check_metrics(result):
    assert result["status"] == "idle", (result["status"], result.get("error"))
    assert result["metrics"]["Delivered messages"] == 2, result["metrics"]
