"""Each class of bad input: one clear message naming file and line, exit
status 2, no traceback."""
import subprocess
import sys

import pytest

from appcases import BAD, expectations


@pytest.mark.parametrize("bad", BAD, ids=lambda p: p.stem)
def test_bad_input_is_reported_clearly(bad):
    done = subprocess.run([sys.executable, "-m", "psim", str(bad)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    for part in expectations(bad):
        assert part in done.stderr, f"{part!r} not in {done.stderr!r}"
