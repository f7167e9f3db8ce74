"""v2 quirks: bare `rts` in ReadyToSend, OnReceive writing to its message
copy, and __init__ deliveries not counted in "Delivered messages".

a sends v = 3, 2, 1 to b and c (broadcast): b doubles each copy (sum 12),
c sees the original values (sum 6). Delivered: 6 (the three __init__
deliveries do not count). No handler_exit: the run ends idle.
"""

expect_status = "idle"


def check_states(result):
    s = result["states"]
    for dev in ("a", "b", "c"):
        assert s[dev]["inits"] == 1, (dev, s[dev])
        assert s[dev]["todo"] == 0, (dev, s[dev])
    assert s["b"]["sum"] == 12 and s["b"]["got"] == 3, s["b"]
    assert s["c"]["sum"] == 6 and s["c"]["got"] == 3, s["c"]
    assert s["a"]["got"] == 0 and s["a"]["sum"] == 0


def check_metrics(result):
    assert result["status"] == "idle", (result["status"], result.get("error"))
    assert result["metrics"]["Delivered messages"] == 6, result["metrics"]
    assert result["metrics"]["Exit code"] == 0
