"""Supervisor with non-POD state (std::vector, std::string with an
initialiser, a helper from <Code> using <numeric>), placed first among the
device types, and device types mixing ordinary pins with supervisor pins
(declared out of order: __SUP_IN__/__SUP_OUT__ still come last).

A token walks the ring w0 -> w4 once; each worker records its hop count
(= its id) and reports it to the supervisor.  After five reports the
supervisor posts a summary and broadcasts the last report to all workers,
then posts the FAIL marker and calls stop_application(): the last exit
request wins, so the exit code is 0.
Deliveries: 4 ring hops + 5 broadcast receipts; sends: 4 + 5."""

split_exact = False      # the supervisor broadcasts and stops in one handler: the broadcast may be in flight


def check_states(result):
    states = result["states"]
    last = states["w0"]["lastFrom"]
    for i in range(5):
        want = {"have": 1, "value": i, "fwd": 0, "reported": 1, "done": 1, "lastFrom": last}
        assert states[f"w{i}"] == want, (i, states[f"w{i}"])
    assert last in range(5)         # the last reporter depends on the schedule


def check_exit_and_log(result):
    assert result["metrics"]["Exit code"] == 0
    assert ["__supervisor__", 0, "gather: reports=5 sum=10 ok=1"] in result["log"], result["log"]
    assert result["metrics"]["Delivered messages"] == 9 and result["metrics"]["Sends"] == 9, result["metrics"]
