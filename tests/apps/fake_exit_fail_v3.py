"""fake_handler_exit(3): any non-zero code logs
_HANDLER_EXIT_FAIL_9be65737_, which ends the run like handler_exit(1):
exit code 1, not 3. The counter gets 1+4+9+16+25 = 55 from five pingers.
"""


def check_exit(result):
    assert result["status"] == "exit", (result["status"], result.get("error"))
    assert result["metrics"]["Exit code"] == 1, result["metrics"]


def check_states(result):
    c = result["states"]["cnt"]
    assert c["got"] == 5 and c["sum"] == 55, c
    assert result["metrics"]["Delivered messages"] == 5
