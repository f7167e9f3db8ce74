"""An indexed send to an index with no edge (2 of 0..1) fails the run, and
the error names the sending device."""

expect_status = "failed"


def check_failed(result):
    assert result["status"] == "failed", result["status"]
    assert result["metrics"]["Exit code"] == 1, result["metrics"]
    assert "sender" in result["error"], result["error"]
    assert "2" in result["error"], result["error"]


def check_no_stray_delivery(result):
    # the first send (index 0) reached r0 only; the bad one reached nobody
    s = result["states"]
    assert s["r1"]["got"] == 0, s["r1"]
    assert s["r0"]["got"] in (0, 1), s["r0"]
