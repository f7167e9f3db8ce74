"""OnHardwareIdle as a barrier (2 rounds, set by graph instance properties
over the default of 3), and no handler_exit: once the rounds are done no
handler sends, so the run must end idle with exit code 0.

Ring c0..c5, init [1, 10, 100, 0, 3, 7]; each round
v[i] += 2*v[i-1] + v[i+1] (indices mod 6):
  after round 1: [25, 112, 120, 203, 10, 14]
  after round 2: [165, 282, 547, 453, 430, 59]
Delivered: 2 rounds * 12 = 24.
"""

expect_status = "idle"

ROUNDS = [[1, 10, 100, 0, 3, 7],
          [25, 112, 120, 203, 10, 14],
          [165, 282, 547, 453, 430, 59]]


def check_states(result):
    for i in range(6):
        s = result["states"]["c%d" % i]
        assert s["val"] == ROUNDS[2][i], (i, s["val"])
        assert list(s["hist"]) == [ROUNDS[0][i], ROUNDS[1][i], 0, 0], (i, s["hist"])
        # hw counts only the rounds; later idle rounds do not change it
        assert s["round"] == 2 and s["hw"] == 2, (i, s["round"], s["hw"])
        assert s["got"] == 0 and s["acc"] == 0 and s["pending"] == 0


def check_metrics(result):
    assert result["status"] == "idle", (result["status"], result.get("error"))
    assert result["metrics"]["Exit code"] == 0
    assert result["metrics"]["Delivered messages"] == 24, result["metrics"]
