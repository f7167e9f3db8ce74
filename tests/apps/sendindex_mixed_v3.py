"""Indexed-pin edge numbering, the two rules of the spec:
- pin p: only one of its three edges has a sendIndex, so all are numbered
  in file order: r2 0, r0 1, r1 2; index 1 -> r0 gets 1.
- pin q: every edge has a sendIndex: r1 0, r2 1, r0 2; index 2 -> r0 gets 10, index 0 -> r1 gets 100.
"""

expect_status = "idle"


def check_states(result):
    s = result["states"]
    assert (s["r0"]["p_sum"], s["r1"]["p_sum"], s["r2"]["p_sum"]) == (1, 0, 0), s
    assert (s["r0"]["q_sum"], s["r1"]["q_sum"], s["r2"]["q_sum"]) == (10, 100, 0), s


def check_metrics(result):
    assert result["status"] == "idle", (result["status"], result.get("error"))
    assert result["metrics"]["Delivered messages"] == 3, result["metrics"]
