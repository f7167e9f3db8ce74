"""Every application in tests/apps gives the answer its checker expects, in
the default order and, when schedule independent, under random orders
(served by its checker's application engine when it defines externals())."""
import pytest

from appcases import APPS, check, externals, options, schedule_independent
from psim import psim

SEEDS = (1, 2, 3)


@pytest.mark.parametrize("app", APPS, ids=lambda p: p.stem)
def test_app(app):
    check(app, psim(str(app), options=options(app), externals=externals(app)))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("app", [a for a in APPS if schedule_independent(a)], ids=lambda p: p.stem)
def test_app_random_order(app, seed):
    check(app, psim(str(app), options={**options(app), "order": "random", "seed": seed}, externals=externals(app)))
