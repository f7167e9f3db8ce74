"""The spec's sup_reply example (supervisors-and-externals.md, section 5):
three askers each make two round trips device -> supervisor -> RTSREPLY();
a loner without supervisor pins is never touched.  The supervisor's sixth
message posts a summary and the success marker (exit 0); the reply it asked
for in that same handler still lands."""

split_exact = False      # the sixth message exits while its reply may still be on its way to another region

EXPECTED = {
    "a1": {"asked": 2, "answered": 2, "lastX": 1, "lastY": 1},
    "a2": {"asked": 2, "answered": 2, "lastX": 2, "lastY": 4},
    "a3": {"asked": 2, "answered": 2, "lastX": 3, "lastY": 9},
    "lone": {"ticks": 1},
}


def check_states(result):
    assert result["states"] == EXPECTED, result["states"]


def check_exit_and_log(result):
    assert result["metrics"]["Exit code"] == 0
    assert ["__supervisor__", 0, "sup_reply: seen=6 sumX=12"] in result["log"], result["log"]
    # six device-to-supervisor sends, six replies (each one delivery)
    assert result["metrics"]["Sends"] == 6 and result["metrics"]["Delivered messages"] == 6, result["metrics"]
