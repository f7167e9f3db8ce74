"""v4 syntax: C-declaration types (nested anonymous struct, arrays), positional
C-initialiser values (nested braces, missing trailing members zero, empty
{} and absent P/S), GraphInstance P, EdgeI P and S, Orchestrator macros.

Graph P {3, 1}: rounds 3, bias 1.
Cells (init, fixed, k): c0 (100, 1, 1), c1 (0, 0, 1), c2 (5, 0, 2, leader),
c3 (no P: 0, 0, 0), c4 (-20, 1, 1).
Incoming edge weights: c1<-c0 1 (edge state n starts at 10), c2<-c1 1,
c3<-c2 1, c4<-c3 1, c0<-c1 2, c1<-c2 2, c2<-c3 no P (0), c3<-c4 2.
Round by round, v = v*k + acc + 1 for unfixed cells:
  round 0: acc [0, 110, 0, -35, 0]     -> v [100, 111, 11, -34, -20]
  round 1: acc [222, 122, 111, -29, -34] -> v [100, 234, 134, -28, -20]
  round 2: acc [468, 368, 234, 94, -28]  -> v [100, 603, 503, 95, -20]
edge_seen sums an edge's n after each increment: 1+2+3 = 6 per edge, and
11+12+13 = 36 for the edge starting at 10.
s.a = fixed + 10; s.b = initial b (c2: 7) + k*1000.
Delivered: 8 edges * 3 rounds = 24.
"""

EXPECTED = {
    "c0": {"v": 100, "hist": [100, 100, 100, 0], "edge_seen": 6, "s": {"a": 11, "b": 1000}},
    "c1": {"v": 603, "hist": [0, 111, 234, 0], "edge_seen": 42, "s": {"a": 10, "b": 1000}},
    "c2": {"v": 503, "hist": [5, 11, 134, 99], "edge_seen": 12, "s": {"a": 10, "b": 2007}},
    "c3": {"v": 95, "hist": [0, -34, -28, 0], "edge_seen": 12, "s": {"a": 10, "b": 0}},
    "c4": {"v": -20, "hist": [-20, -20, -20, 0], "edge_seen": 6, "s": {"a": 11, "b": 1000}},
}


def check_states(result):
    for dev, want in EXPECTED.items():
        got = result["states"][dev]
        assert got["v"] == want["v"], (dev, got["v"], want["v"])
        assert list(got["hist"]) == want["hist"], (dev, got["hist"])
        assert got["edge_seen"] == want["edge_seen"], (dev, got["edge_seen"])
        assert dict(got["s"]) == want["s"], (dev, got["s"])
        assert got["t"] == 3 and got["acc"] == 0 and got["got"] == 0 and got["pending"] == 0, (dev, got)


def check_metrics(result):
    assert result["status"] == "exit", (result["status"], result.get("error"))
    assert result["metrics"]["Exit code"] == 0
    assert result["metrics"]["Delivered messages"] == 24, result["metrics"]
