"""Edge properties on several input pins of one device type, and on a pin of
an earlier type (regression: the pins of the type being read were numbered
as one, so `m:scaled` edges were checked against `weighted`'s W).

f: K=5 from s1 (v=2): acc 10.  m: plain from s1: 2; weighted W=7 from s2
(v=3): 21; scaled P=1.5 from s1 and P=0.5 from s2: 3.0 + 1.5 = 4.5; edge
state seen: s1's edge starts at 10 -> 11, s2's -> 1: seen 12.
"""

expect_status = "idle"


def check_first_type(result):
    assert result["states"]["f"]["acc"] == 10


def check_three_pins(result):
    m = result["states"]["m"]
    assert (m["plain_sum"], m["w_sum"], m["p_sum"], m["seen"]) == (2, 21, 4.5, 12), m


def check_metrics(result):
    assert result["status"] == "idle", (result["status"], result.get("error"))
    assert result["metrics"]["Delivered messages"] == 5
