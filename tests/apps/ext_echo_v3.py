"""An external device served by an application engine: `io` doubles what
`dev` sends it (1, 2, 3), so dev's sum is 2 + 4 + 6 = 12.  No handler_exit:
the run ends idle.  Delivered: 3 to io (in the engine) + 3 to dev.

The engine doubles in Python, the way a user would serve an external
(`psim --external tests/apps/ext_echo_v3.py:externals tests/apps/ext_echo_v3.xml`).
"""
import pcli

expect_status = "idle"


def doubler(engine, msg):
    assert (msg.dst, msg.pin, msg.src, msg.src_pin) == ("io", "in", "dev", "ask"), msg
    engine.state.setdefault("io", {"seen": []})["seen"].append(msg.fields["v"])
    engine.send("io", "out", v=2 * msg.fields["v"])


def externals() -> pcli.Engine:
    return pcli.Engine(doubler)


def check_states(result):
    assert result["states"]["dev"] == {"sent": 3, "sum": 12, "got": 3}, result["states"]
    assert result["states"]["io"] == {"seen": [1, 2, 3]}, result["states"]


def check_metrics(result):
    assert result["metrics"]["Exit code"] == 0
    assert result["metrics"]["Delivered messages"] == 6, result["metrics"]
