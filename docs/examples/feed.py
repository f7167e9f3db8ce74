"""I/O from a file into a running process: an application engine serves the
external `input` of feed.xml and, as the region starts, sends every number
of a text file (one per line) into the process; the C device `acc` adds
them up and ends the run at the last one.

    psim --external docs/examples/feed.py:from_file docs/examples/feed.xml      (reads $FEED_FILE)

or, on a cluster, from a script:

    eng = feeder("numbers.txt")
    fut = pcli.run("docs/examples/feed.xml", externals=eng, async_=True)
    eng.run()
    print(pcli.block(fut)["states"]["acc"])
"""
import os

import pcli


def feeder(path: str) -> pcli.Engine:
    def start(engine):
        with open(path) as f:
            numbers = [int(line) for line in f if line.strip()]
        for i, n in enumerate(numbers):
            engine.send("input", "out", value=n, last=int(i == len(numbers) - 1))

    def receive(engine, msg):            # `input` has no input pin: nothing ever comes
        raise AssertionError(msg)
    return pcli.Engine(receive, start=start)


def from_file() -> pcli.Engine:
    return feeder(os.environ["FEED_FILE"])
