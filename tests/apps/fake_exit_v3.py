"""fake_handler_exit(0): the magic level-0 log string
_HANDLER_EXIT_SUCCESS_9be65737_ ends the run like handler_exit(0).
The counter gets 1+4+9+16+25 = 55 from five pingers, then exits.
Run at log level 0 (the magic line is logged at level 0).
"""

options = {"level": 0}


def check_exit(result):
    assert result["status"] == "exit", (result["status"], result.get("error"))
    assert result["metrics"]["Exit code"] == 0, result["metrics"]


def check_states(result):
    c = result["states"]["cnt"]
    assert c["got"] == 5 and c["sum"] == 55, c
    assert result["metrics"]["Delivered messages"] == 5
