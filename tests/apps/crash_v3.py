"""A handler that crashes (null pointer write) fails the run, naming the
device and the handler; the caller gets a result, not a dead process."""

expect_status = "failed"


def check_failed(result):
    assert result["status"] == "failed", result["status"]
    assert result["metrics"]["Exit code"] != 0, result["metrics"]
    error = result["error"]
    assert "victim" in error and "OnReceive" in error, error
    assert "'fine'" not in error, error
