"""Edge properties and state, broadcast fan-out, indexed sends, *doSend.

By hand (sA broadcasts v=1,2,3, sum 6; sB broadcasts v=1,2, sum 3):
  d0: edges sA (weight 1, slot 0) and sB (weight 100, slot 1)
      acc = 6*1 + 3*100 = 306, edge_n [3, 2], edge_sum [6, 300]
  d1: edges sA (weight 2) and sB (default weight 10, slot 1, n starts at 5)
      acc = 12 + 30 = 42, edge_n [3, 7], edge_sum [12, 30]
  d2: sA weight 3: acc 18;  d3: sA default weight 10: acc 60
Indexed: sA's pick edges carry sendIndex (d1 0, d3 1, d0 2, d2 3) and sA
sends to index 2 -> only d0 gets 42; sB's pick edges have no sendIndex, so
file order (d3 0, d2 1), and sB sends to index 1 -> only d2 gets 43.
maybe: the first send (v=1000) is cancelled, the second (v=7) reaches
d1 and d3.
Delivered: bcast 3*4 + 2*2 = 16, pick 2, maybe 2 -> 20.
"""

expect_status = "idle"

EXPECTED = {
    "d0": {"acc": 306, "recv_w": 5, "edge_n": [3, 2], "edge_sum": [6, 300],
           "picked": 1, "picked_v": 42, "maybe_n": 0, "maybe_sum": 0},
    "d1": {"acc": 42, "recv_w": 5, "edge_n": [3, 7], "edge_sum": [12, 30],
           "picked": 0, "picked_v": 0, "maybe_n": 1, "maybe_sum": 7},
    "d2": {"acc": 18, "recv_w": 3, "edge_n": [3, 0], "edge_sum": [18, 0],
           "picked": 1, "picked_v": 43, "maybe_n": 0, "maybe_sum": 0},
    "d3": {"acc": 60, "recv_w": 3, "edge_n": [3, 0], "edge_sum": [60, 0],
           "picked": 0, "picked_v": 0, "maybe_n": 1, "maybe_sum": 7},
    "sA": {"sent_b": 3, "sent_p": 1, "sent_m": 2},
    "sB": {"sent_b": 2, "sent_p": 1, "sent_m": 0},
}


def check_states(result):
    for dev, want in EXPECTED.items():
        got = result["states"][dev]
        for field, value in want.items():
            g = got[field]
            if isinstance(value, list):
                g = list(g)
            assert g == value, (dev, field, g, value)


def check_broadcast_weights(result):
    s = result["states"]
    assert s["d0"]["acc"] == 306 and s["d1"]["acc"] == 42
    assert s["d2"]["acc"] == 18 and s["d3"]["acc"] == 60


def check_indexed_send(result):
    s = result["states"]
    assert [s[d]["picked"] for d in ("d0", "d1", "d2", "d3")] == [1, 0, 1, 0]


def check_cancelled_send(result):
    s = result["states"]
    # the cancelled message carried 1000: it must not have arrived anywhere
    for d in ("d0", "d1", "d2", "d3"):
        assert s[d]["maybe_sum"] in (0, 7), (d, s[d]["maybe_sum"])


def check_metrics(result):
    assert result["status"] == "idle", (result["status"], result.get("error"))
    assert result["metrics"]["Delivered messages"] == 20, result["metrics"]
    assert result["metrics"]["Exit code"] == 0
