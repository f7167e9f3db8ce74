"""Checkers of wsum_v3.xml (and of wsum_v4.xml, the same application in v4:
`psim --check docs/examples/wsum_v3.py docs/examples/wsum_v4.xml`).

The hub hears each sensor once, over edges of weight 1, 3 and 2:
1*5 + 3*(-2) + 2*10 = 19, whatever the order the readings arrive in.
"""


def check_sum(result):
    """the hub's weighted sum is 19"""
    hub = result["states"]["hub"]
    assert hub == {"sum": 19, "heard": 3}, hub


def check_sensors(result):
    """every sensor sent once"""
    for s in ("s0", "s1", "s2"):
        assert result["states"][s] == {"sent": 1}, (s, result["states"][s])
    assert result["metrics"]["Delivered messages"] == 3, result["metrics"]
