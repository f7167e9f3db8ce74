"""v3: a pin named __init__ is an ordinary pin (no start-up delivery).
starter sends 10 and 20 to target's __init__ pin; OnInit runs once on each.
"""

expect_status = "idle"


def check_states(result):
    s = result["states"]
    for dev in ("starter", "target", "loner"):
        assert s[dev]["inits"] == 1, (dev, s[dev])
    assert s["target"]["pin_got"] == 2 and s["target"]["pin_sum"] == 30, s["target"]
    assert s["starter"]["pin_got"] == 0 and s["loner"]["pin_got"] == 0
    assert s["starter"]["sent"] == 2


def check_metrics(result):
    assert result["status"] == "idle", (result["status"], result.get("error"))
    assert result["metrics"]["Delivered messages"] == 2, result["metrics"]
