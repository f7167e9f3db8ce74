"""A failed assert: chk2 (limit 5) receives v=10 and its OnReceive assert,
on line 42 of assert_v3.xml, fails. The run must end "failed" with exit
code 1 and an error naming the device, the handler and the line.
"""

expect_status = "failed"

ASSERT_LINE = 42   # the line of `assert(message->v < deviceProperties->limit);`


def check_failed(result):
    assert result["status"] == "failed", result["status"]
    assert result["metrics"]["Exit code"] == 1, result["metrics"]


def check_error_text(result):
    error = result["error"]
    assert "chk2" in error, error
    for other in ("chk0", "chk1", "chk3"):
        assert other not in error, error
    assert "OnReceive" in error, error
    assert "assert_v3.xml:%d" % ASSERT_LINE in error, error


def check_line_is_right(result):
    # guards the hard-coded number against edits of the XML
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "assert_v3.xml")) as f:
        lines = f.read().split("\n")
    assert "assert(message->v < deviceProperties->limit)" in lines[ASSERT_LINE - 1]


def check_failing_device_state(result):
    # the handler ran up to the assert: chk2 recorded the value
    assert result["states"]["chk2"]["seen"] == 10, result["states"]["chk2"]
