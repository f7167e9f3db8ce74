"""Ring oscillator (v2, copy of the seed app): a token goes round 4 nodes.

Exercises the v2 dialect: the `__init__` input pin, a v2 SharedCode helper
that takes the state struct by its default C type name (ro_node_state_t),
RTS_FLAG_<pin>, handler_log and handler_exit.

By hand: n0's __init__ sets its counter to 1 and sends; every delivery
increments the receiver's counter and forwards, until the 40th delivery
(to n0, whose counter is already 10) calls handler_exit(0).
"""


def check_states(result):
    states = result["states"]
    assert sorted(states) == ["n0", "n1", "n2", "n3"], sorted(states)
    for dev in ("n0", "n1", "n2", "n3"):
        assert states[dev]["counter"] == 10, (dev, states[dev]["counter"])
        assert states[dev]["toggle_buffer_ptr"] == 0, dev
    # n0 starts at 1 and toggles 9 times (its 10th delivery exits instead);
    # n1..n3 start at 0 and toggle 10 times
    for dev in ("n0", "n1", "n2", "n3"):
        assert states[dev]["state"] == 0, (dev, states[dev]["state"])


def check_metrics(result):
    assert result["status"] == "exit", result.get("error")
    assert result["metrics"]["Delivered messages"] == 40, result["metrics"]
    assert result["metrics"]["Exit code"] == 0


def check_log(result):
    # level-1 "counter = %d" lines: 1 from n0's __init__ and one per delivery
    # except the last (which exits instead): 40 lines, each node 1..10
    lines = [tuple(entry) for entry in result["log"]]
    assert len(lines) == 40, len(lines)
    for dev in ("n0", "n1", "n2", "n3"):
        mine = [text for (d, level, text) in lines if d == dev]
        assert mine == ["counter = %d" % i for i in range(1, 11)], (dev, mine)
    assert all(level == 1 for (_, level, _) in lines)
