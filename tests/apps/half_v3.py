"""half (IEEE binary16) scalars: JSON loading, default attribute, 2-byte
packed layout, and bit-exact copies through state and messages.

Properties are half 2 + half[2] 4 + uint16 2 = 8 bytes (after_c checks that
`after` sits right behind the halves); hmsg is 2 + 1 = 3 bytes.
All values are exactly representable in half (65504 is its maximum).
"""

expect_status = "idle"


def _f(x):
    assert isinstance(x, (int, float)) and not isinstance(x, bool), x
    return float(x)


def check_values(result):
    a, b = result["states"]["a"], result["states"]["b"]
    assert _f(a["sh"]) == 0.5 and _f(b["sh"]) == 65504.0, (a["sh"], b["sh"])
    assert _f(a["copy"]) == 1024.0 and _f(b["copy"]) == -0.75
    # a receives b's ph and vice versa
    assert _f(a["got"]) == 0.125 and _f(b["got"]) == -2.25, (a["got"], b["got"])
    for s in (a, b):
        assert s["got_tail"] == 0xA5
        assert s["psize"] == 8, s["psize"]
        assert s["msize"] == 3, s["msize"]
    assert a["after_c"] == 4660 and b["after_c"] == 1


def check_metrics(result):
    assert result["status"] == "idle", (result["status"], result.get("error"))
    assert result["metrics"]["Delivered messages"] == 2
    assert result["metrics"]["Exit code"] == 0
