"""Reduction over a 15-node binary tree: node ti holds (i+1)^2, the root
checks 1^2 + ... + 15^2 = 1240 (and 15 nodes) and calls handler_exit(0).

Subtree totals (ti's own value plus both subtrees):
  t0 1240, t1 411, t2 828, t3 161, t4 246, t5 349, t6 470,
  leaves t7..t14: 64, 81, 100, 121, 144, 169, 196, 225.
Delivered: one message per non-root node, 14.
"""

SUBTREE = [1240, 411, 828, 161, 246, 349, 470, 64, 81, 100, 121, 144, 169, 196, 225]
COUNT = [15, 7, 7, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1]


def check_total(result):
    assert result["status"] == "exit", (result["status"], result.get("error"))
    assert result["metrics"]["Exit code"] == 0
    assert result["states"]["t0"]["total"] == 1240


def check_subtrees(result):
    for i in range(15):
        s = result["states"]["t%d" % i]
        assert s["total"] == SUBTREE[i], (i, s["total"], SUBTREE[i])
        assert s["count"] == COUNT[i], (i, s["count"])
        assert s["got"] == (2 if i < 7 else 0), (i, s["got"])
        assert s["sent"] == (0 if i == 0 else 1), (i, s["sent"])


def check_metrics(result):
    assert result["metrics"]["Delivered messages"] == 14, result["metrics"]
