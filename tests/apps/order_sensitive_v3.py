"""Schedule-dependent on purpose: the sink's `order`, `seq` and `last`
depend on the delivery order of five messages. Only what holds under every
schedule is checked here. Another test runs it with order="random" and
several seeds and compares `seq` (e.g. 12345 vs 31524) to show that the
seeds give different orders.
"""

schedule_independent = False
expect_status = "idle"


def order_of(result):
    """The arrival order at the sink, as a list of tags (for other tests)."""
    return list(result["states"]["sink"]["order"])


def check_all_arrived(result):
    sink = result["states"]["sink"]
    assert sink["got"] == 5, sink
    assert sorted(order_of(result)) == [1, 2, 3, 4, 5], sink["order"]
    digits = [int(c) for c in str(sink["seq"])]
    assert digits == order_of(result), (sink["seq"], sink["order"])
    assert sink["last"] == order_of(result)[-1]


def check_metrics(result):
    assert result["status"] == "idle", (result["status"], result.get("error"))
    assert result["metrics"]["Delivered messages"] == 5
    assert result["metrics"]["Exit code"] == 0
    for i in range(1, 6):
        assert result["states"]["s%d" % i]["sent"] == 1
