"""OnHardwareIdle as a barrier (3 rounds), ending with handler_exit(0) from
OnHardwareIdle.

Ring c0..c5, init [1, 10, 100, 0, 3, 7]; each round
v[i] += 2*v[i-1] + v[i+1] (indices mod 6):
  after round 1: [25, 112, 120, 203, 10, 14]
  after round 2: [165, 282, 547, 453, 430, 59]
  after round 3: [565, 1159, 1564, 1977, 1395, 1084]
hist[r] holds the value at the start of round r. Each round delivers
6 cells * 2 edges = 12 messages: 36 in all.
"""

ROUNDS = [[1, 10, 100, 0, 3, 7],
          [25, 112, 120, 203, 10, 14],
          [165, 282, 547, 453, 430, 59],
          [565, 1159, 1564, 1977, 1395, 1084]]


def check_states(result):
    for i in range(6):
        s = result["states"]["c%d" % i]
        assert s["val"] == ROUNDS[3][i], (i, s["val"])
        assert list(s["hist"]) == [ROUNDS[0][i], ROUNDS[1][i], ROUNDS[2][i], 0], (i, s["hist"])
        assert s["round"] == 3 and s["hw"] == 3, (i, s["round"], s["hw"])
        assert s["got"] == 0 and s["acc"] == 0 and s["pending"] == 0


def check_metrics(result):
    assert result["status"] == "exit", (result["status"], result.get("error"))
    assert result["metrics"]["Exit code"] == 0
    assert result["metrics"]["Delivered messages"] == 36, result["metrics"]
