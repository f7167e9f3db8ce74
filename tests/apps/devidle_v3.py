"""OnDeviceIdle requested with bit 31 of *readyToSend (RTC_FLAG_<type> and a
literal 1u<<31): one unit of work per call.

w0 (n 4): calls 4, sum 1+2+3+4 = 10, one result message
w1 (n 10): calls 10, sum 55, one message
w2 (worker2, n 3, sums squares): calls 3, sum 1+4+9 = 14, one message
w3 (worker3, n 3): a message after each unit (sum fields 1, 2, 3; calls
    fields 1, 2, 3); its OnDeviceIdle asserts no send is pending, so it
    must only run when bit 31 is the only bit left.
collector: got 6, total 10+55+14+6 = 85, calls 4+10+3+6 = 23, then
handler_exit(0).
"""


def check_workers(result):
    s = result["states"]
    for dev, n, total in (("w0", 4, 10), ("w1", 10, 55), ("w2", 3, 14)):
        assert s[dev]["calls"] == n, (dev, s[dev]["calls"])
        assert s[dev]["work"] == n, (dev, s[dev]["work"])
        assert s[dev]["sum"] == total, (dev, s[dev]["sum"])
        assert s[dev]["sent"] == 1, dev
    w3 = s["w3"]
    assert w3["calls"] == 3 and w3["work"] == 3 and w3["sends"] == 3 and w3["queued"] == 0, w3


def check_collector(result):
    c = result["states"]["col"]
    assert c["got"] == 6 and c["total"] == 85 and c["calls"] == 23, c


def check_metrics(result):
    assert result["status"] == "exit", (result["status"], result.get("error"))
    assert result["metrics"]["Exit code"] == 0
    assert result["metrics"]["Delivered messages"] == 6, result["metrics"]
