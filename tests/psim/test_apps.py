"""Every application in tests/apps gives the answer its checker expects, in
the default order and, when schedule independent, under random orders
(served by its checker's application engine when it defines externals());
and with its supervisor in Python when the checker has one."""
import pytest

from appcases import APPS, check, checker, externals, options, schedule_independent, supervisor
from psim import psim

SEEDS = (1, 2, 3)


@pytest.mark.parametrize("app", APPS, ids=lambda p: p.stem)
def test_app(app):
    check(app, psim(str(app), options=options(app), externals=externals(app)))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("app", [a for a in APPS if schedule_independent(a)], ids=lambda p: p.stem)
def test_app_random_order(app, seed):
    check(app, psim(str(app), options={**options(app), "order": "random", "seed": seed}, externals=externals(app)))


@pytest.mark.parametrize("order", ["fixed", "random"])
@pytest.mark.parametrize("app", [a for a in APPS if hasattr(checker(a), "supervisor")], ids=lambda p: p.stem)
def test_app_with_its_supervisor_in_python(app, order):
    """Its checker's supervisor() (a pcli.Engine) runs the supervisor instead
    of the application's C code, in this process: the same answer."""
    check(app, psim(str(app), options={**options(app), "order": order, "seed": 1}, supervisor=supervisor(app)))
