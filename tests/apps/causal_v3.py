"""A schedule-dependent bug on purpose: a sink asserts that its root's
direct note arrives before the copy sent through a relay.  The default
order passes; some random seeds fail the assertion (tests/psim/test_trace.py
finds one, traces it and replays the failure).
"""

schedule_independent = False
expect_status = "idle"


def check_every_sink_got_both(result):
    assert result["status"] == "idle", result.get("error")
    for i in range(4):
        assert result["states"][f"sink{i}"] == {"direct": 1, "relayed": 1}, result["states"][f"sink{i}"]
    assert result["metrics"]["Delivered messages"] == 12
