"""A supervisor ends the run with a code: a tree sums 1..7 up to its root,
which reports the total (28) to the supervisor; application_exit(3) means
the total was right."""


def check_states(result):
    s = result["states"]
    assert s["t0"] == {"got": 2, "sum": 27, "sent": 1}, s
    assert s["t1"] == {"got": 2, "sum": 9, "sent": 1} and s["t2"] == {"got": 2, "sum": 13, "sent": 1}, s
    assert all(s[f"t{i}"] == {"got": 0, "sum": 0, "sent": 1} for i in range(3, 7)), s


def check_exit_and_log(result):
    assert result["metrics"]["Exit code"] == 3
    assert ["__supervisor__", 0, "sup_code: total=28 nodes=7"] in result["log"], result["log"]
    assert result["metrics"]["Delivered messages"] == 6, result["metrics"]
