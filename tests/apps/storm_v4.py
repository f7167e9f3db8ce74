"""A token-passing storm: ends under every fair schedule; the random order
must be one (regression: fixed odds between send and deliver flooded the
pool and never ended).  The token starts at d0 (h 0) and makes 32 hops
round the 16-device ring: d0 holds it three times (start, h 16, h 32),
every other device twice (h = 16 + i last).  max_steps turns a flood into
a failure instead of a hang."""

expect_status = "idle"
options = {"max_steps": 1_000_000}
exact_answer = False            # how many pings fly depends on the schedule


def check_token_went_round_twice(result):
    s = result["states"]
    assert s["d0"]["tokens"] == 3 and s["d0"]["h"] == 32
    for i in range(1, 16):
        assert (s[f"d{i}"]["tokens"], s[f"d{i}"]["h"]) == (2, 16 + i), (i, s[f"d{i}"])


def check_nobody_waits(result):
    assert not any(st["waiting"] or st["ack_pending"] or st["pass_pending"] for st in result["states"].values())


def check_ended_well(result):
    assert result["metrics"]["Exit code"] == 0, result.get("error")
