"""A handler stuck in a loop, under options timeout: the run must end
"failed" after about the timeout, with an error naming the device."""

options = {"timeout": 0.5}
expect_status = "failed"
schedule_independent = False   # one run is enough; each waits for the timeout


def check_failed(result):
    assert result["status"] == "failed", result["status"]
    assert result["metrics"]["Exit code"] != 0, result["metrics"]
    assert "spinner" in result["error"], result["error"]
