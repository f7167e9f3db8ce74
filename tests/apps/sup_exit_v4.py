"""A supervisor and its pin with empty ids; orchestrator->log and
orchestrator->application_exit(n).  Both devices are ready at the start,
so both send in the first round: the supervisor's first message asks for
exit code 3, which lets the round finish (as the reference's epoch); the
second asks for 4, and the last request wins.  <OnStop> never runs."""

split_exact = False      # the first of two exit requests may end a split run before the second is sent


def check_states(result):
    assert result["states"] == {"a": {"sent": 1}, "b": {"sent": 1}}, result["states"]


def check_exit_and_log(result):
    assert result["metrics"]["Exit code"] == 4
    lines = [text for who, _, text in result["log"] if who == "__supervisor__"]
    assert len(lines) == 2 and lines[1] == "sup_exit: got 2 sum 42", lines
    assert lines[0] in ("sup_exit: got 1 sum 10", "sup_exit: got 1 sum 32"), lines
