"""The spec's sup_bcast example: the leader n1 asks for a broadcast; every
device whose type has a SupervisorInPin hears it (n1 itself and the
listener 'ear' too, the 'deaf' rock not): 5 deliveries; the followers
acknowledge and the supervisor's stop_application() ends the run (exit 0)."""

split_exact = False      # the last ack stops the run: the listener's broadcast may still be on its way

FOLLOWER = {"requested": 0, "heard": 1, "lastRound": 7, "lastFrom": 1, "acked": 1}
EXPECTED = {
    "n0": FOLLOWER, "n2": FOLLOWER, "n3": FOLLOWER,
    "n1": {"requested": 1, "heard": 1, "lastRound": 7, "lastFrom": 1, "acked": 0},
    "ear": {"heard": 1, "lastRound": 7},
    "rock": {"z": 7},
}


def check_states(result):
    assert result["states"] == EXPECTED, result["states"]


def check_exit_and_log(result):
    assert result["metrics"]["Exit code"] == 0
    assert ["__supervisor__", 0, "sup_bcast: acks=3 bcasts=1"] in result["log"], result["log"]
    assert result["metrics"]["Delivered messages"] == 5, result["metrics"]
