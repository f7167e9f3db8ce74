"""handler_log's fast path (core/engine_base.hpp): a call above the run's
level formats nothing, yet its arguments are still evaluated; the
fake_handler_exit markers end the run whether the format is a literal
(folded at compile time) or chosen at run time."""
from pathlib import Path

import pytest
from tinyapp import ring_app

from psim import psim

APPS = Path(__file__).parent.parent / "apps"


@pytest.mark.parametrize("level", [0, 1, 4])
def test_filtered_calls_still_evaluate_their_arguments(level):
    """The seed's ring increments its counter inside a handler_log argument:
    at level 0 no line is kept, but every counter still reaches 10."""
    res = psim(APPS / "ring_v2.xml", options={"level": level})
    assert res["status"] == "exit", res.get("error")
    assert {d: s["counter"] for d, s in res["states"].items()} == {f"n{i}": 10 for i in range(4)}
    counter_lines = [entry for entry in res["log"] if "counter =" in entry[2]]
    assert len(counter_lines) == (0 if level < 1 else 40)


@pytest.mark.parametrize("marker, status, code", [("_HANDLER_EXIT_SUCCESS_9be65737_", "exit", 0),
                                                 ("_HANDLER_EXIT_FAIL_9be65737_", "exit", 1)])
def test_a_marker_chosen_at_run_time_ends_the_run(marker, status, code):
    """The format is a variable, so the marker cannot be folded away: the
    run-time check must still see it (and log nothing for it)."""
    receive = (f'static const char* const mark = "{marker}"; '
               f'if (deviceState->got == 2) handler_log(0, deviceState->got == 2 ? mark : "x");')
    res = psim(ring_app(f"mark{code}", receive=receive), options={"level": 4})
    assert res["status"] == status, res.get("error")
    assert res["metrics"]["Exit code"] == code
    assert not any("HANDLER_EXIT" in entry[2] for entry in res["log"])


def test_a_kept_line_is_formatted():
    res = psim(ring_app("kept", receive='handler_log(2, "got %u of %s", deviceState->got, "three");'),
               options={"level": 2})
    assert ("d1", 2, "got 3 of three") in [tuple(entry) for entry in res["log"]]
    assert psim(ring_app("kept", receive='handler_log(2, "got %u", deviceState->got);'),
                options={"level": 1})["log"] == []
