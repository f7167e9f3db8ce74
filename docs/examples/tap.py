"""An instrumentation engine: the external `tap` of tap.xml hears every
message the nodes send; the engine counts them per sender in batches
(receive_batch: one NumPy array per batch, no Python per message) and
keeps the counts as the tap's state in the result.

    psim -r --external docs/examples/tap.py:counter docs/examples/tap.xml
"""
import numpy as np

import pcli


def counter() -> pcli.Engine:
    counts = np.zeros(0, np.int64)

    def receive_batch(engine, deliveries):
        nonlocal counts
        seen = np.bincount(deliveries["src"])            # device indices of the senders
        counts = np.pad(counts, (0, max(0, len(seen) - len(counts))))
        counts[:len(seen)] += seen
        engine.state["tap"] = {f"n{i}": int(c) for i, c in enumerate(counts) if c}
    return pcli.Engine(receive_batch=receive_batch)
