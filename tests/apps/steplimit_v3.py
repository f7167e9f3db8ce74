"""A run that never ends by itself, under options max_steps: it must end
"failed" (step limit) with an error, and the states so far."""

options = {"max_steps": 1000}
expect_status = "failed"


def check_failed(result):
    assert result["status"] == "failed", result["status"]
    assert result.get("error"), result
    assert result["metrics"]["Exit code"] != 0, result["metrics"]


def check_progress(result):
    s = result["states"]
    # the ball went back and forth a good many times before the limit
    assert max(s["ping"]["hits"], s["pong"]["hits"]) >= 100, s
    assert result["metrics"]["Delivered messages"] >= 100, result["metrics"]
