"""OnDeviceIdle requested with bit 31 of *readyToSend (RTC_FLAG_worker and a
literal 1u<<31): one unit of work per call.

w0 (n 4): calls 4, sum 1+2+3+4 = 10
w1 (n 10): calls 10, sum 55
w2 (worker2, n 3, sums squares): calls 3, sum 1+4+9 = 14
collector: got 3, total 79, calls 17, then handler_exit(0).
"""


def check_workers(result):
    s = result["states"]
    for dev, n, total in (("w0", 4, 10), ("w1", 10, 55), ("w2", 3, 14)):
        assert s[dev]["calls"] == n, (dev, s[dev]["calls"])
        assert s[dev]["work"] == n, (dev, s[dev]["work"])
        assert s[dev]["sum"] == total, (dev, s[dev]["sum"])
        assert s[dev]["sent"] == 1, dev


def check_collector(result):
    c = result["states"]["col"]
    assert c["got"] == 3 and c["total"] == 79 and c["calls"] == 17, c


def check_metrics(result):
    assert result["status"] == "exit", (result["status"], result.get("error"))
    assert result["metrics"]["Exit code"] == 0
    assert result["metrics"]["Delivered messages"] == 3, result["metrics"]
