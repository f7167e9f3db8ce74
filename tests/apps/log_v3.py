"""handler_log: levels and printf formatting, at run level 2.

Expected lines (device, level, text):
  lg 0 "L0 d=-42 u=4000000000"
  lg 1 "L1 f=2.500000 s=literal text"
  lg 2 "L2 x=ff X=0000BEEF"
  ls 2 "R2 got -7 (12.50%)"
Level-3 lines ("L3 hidden 3", "R3 hidden -7") must not appear.
"""

options = {"level": 2}
expect_status = "idle"

EXPECTED = [
    ("lg", 0, "L0 d=-42 u=4000000000"),
    ("lg", 1, "L1 f=2.500000 s=literal text"),
    ("lg", 2, "L2 x=ff X=0000BEEF"),
    ("ls", 2, "R2 got -7 (12.50%)"),
]


def _lines(result):
    return [tuple(entry) for entry in result["log"]]


def check_lines(result):
    lines = _lines(result)
    assert lines == EXPECTED, lines


def check_no_level3(result):
    for dev, level, text in _lines(result):
        assert level <= 2, (dev, level, text)
        assert "hidden" not in text, text


def check_state(result):
    assert result["status"] == "idle", (result["status"], result.get("error"))
    assert result["states"]["ls"]["got"] == -7
    assert result["metrics"]["Delivered messages"] == 1
