"""Supervisor replies across regions, ending idle: eight askers each ask
three times and wait for each reply (their own message back) before asking
again, passing a note to their neighbour after each one.  The run ends idle;
the supervisor's tick posts its summary exactly once."""

import pcli

expect_status = "idle"


def check_states(result):
    want = {f"a{i}": {"asked": 3, "answered": 3, "sum": 6 * i, "waiting": 0, "notes": 3, "toNote": 0}
            for i in range(8)}
    assert result["states"] == {**want, "lone": {"ticks": 1}}, result["states"]


def check_summary_and_counts(result):
    lines = [text for who, _, text in result["log"] if who == "__supervisor__"]
    assert lines == ["sup_ask: seen=24 sumX=84"], lines
    # 24 questions and 24 notes sent; 24 replies and 24 notes delivered
    assert result["metrics"]["Sends"] == 48 and result["metrics"]["Delivered messages"] == 48, result["metrics"]


def supervisor():
    """The oracle in Python: every question is answered with its own message."""
    seen = {"n": 0, "sumX": 0, "posted": False}

    def receive(engine, msg):
        seen["n"] += 1
        seen["sumX"] += msg.fields["x"]
        engine.reply(msg)

    def tick(engine):
        if seen["n"] == 24 and not seen["posted"]:
            seen["posted"] = True
            engine.log("__supervisor__", f"sup_ask: seen=24 sumX={seen['sumX']}", level=0)
    return pcli.Engine(receive, supervisor_idle=tick)
