"""A supervisor in a run that ends idle after hardware-idle rounds: a token
makes 20 hops around five cells (4 visits each); at the first hardware-idle
round every cell reports to the supervisor, which broadcasts one
acknowledgement after the last report and posts its summary once.  The run
goes through the reference's ten quiet idle rounds after that."""

import pcli

expect_status = "idle"


def check_states(result):
    for i in range(5):
        st = result["states"][f"c{i}"]
        assert {k: st[k] for k in ("seen", "fwd", "report", "reported", "acked")} == \
            {"seen": 4, "fwd": 0, "report": 1, "reported": 1, "acked": 1}, (i, st)
        assert st["idles"] >= 10, st                 # the first round, then ten without a send
    assert result["states"]["c0"]["next"] == 20               # hop 19 ends the walk at c0


def check_summary(result):
    lines = [text for who, _, text in result["log"] if who == "__supervisor__"]
    assert lines == ["sup_hwidle: reports=5 hops=20"], lines
    assert result["metrics"]["Delivered messages"] == 25, result["metrics"]      # 20 hops, 5 acks


def supervisor():
    """The supervisor in Python: its OnSupervisorIdle is supervisor_idle."""
    tally = {"reports": 0, "hops": 0, "posted": False}

    def receive(engine, msg):
        tally["reports"] += 1
        tally["hops"] += msg.fields["seen"]
        if tally["reports"] == 5:
            engine.broadcast()

    def tick(engine):
        if tally["reports"] == 5 and not tally["posted"]:
            tally["posted"] = True
            engine.log("__supervisor__", f"sup_hwidle: reports=5 hops={tally['hops']}", level=0)
    return pcli.Engine(receive, supervisor_idle=tick)
