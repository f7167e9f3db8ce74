"""A supervisor barrier: six nodes report each of four steps; the supervisor
broadcasts after each complete step but the last (the listener 'ear'
acknowledges each broadcast), then stops the run (stop_application, exit 0)
once the last step is in and the listener has acknowledged every broadcast:
nothing is in flight then, so split runs give the same answer as a whole one."""

import pcli

NODE = {"step": 3, "reported": 4, "heard": 3, "lastGo": 2}


def check_states(result):
    assert result["states"] == {**{f"n{i}": NODE for i in range(6)}, "ear": {"heard": 3, "lastGo": 2, "acked": 3}}, \
        result["states"]


def check_exit_and_log(result):
    assert result["metrics"]["Exit code"] == 0
    assert ["__supervisor__", 0, "sup_barrier: rounds=4 bcasts=3"] in result["log"], result["log"]
    # 24 reports and 3 acknowledgements; 3 broadcasts to 7 listeners
    assert result["metrics"]["Sends"] == 27 and result["metrics"]["Delivered messages"] == 21, result["metrics"]


def supervisor():
    """The supervisor in Python (pcli.Engine), as the application's C code."""
    seen = {"count": 0, "round": 0, "acks": 0, "done": False}

    def receive(engine, msg):
        assert (msg.dst, msg.pin, msg.src_pin) == ("__supervisor__", "", "__SUP_OUT__"), msg
        if msg.fields["from"] == 99:
            seen["acks"] += 1                     # the listener heard a broadcast
        else:
            assert msg.fields["step"] == seen["round"], msg
            seen["count"] += 1
            if seen["count"] == 6:
                seen["count"] = 0
                if seen["round"] == 3:
                    seen["done"] = True
                else:
                    seen["round"] += 1
                    engine.broadcast(msg.fields)
        if seen["done"] and seen["acks"] == 3:
            engine.log("__supervisor__", "sup_barrier: rounds=4 bcasts=3", level=0)    # as Super::post
            engine.exit(0)
    return pcli.Engine(receive)
