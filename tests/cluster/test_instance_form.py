"""Split processes load the client's binary instance form (pd/form.py)
instead of parsing the XML in every region: the same answers, and a forged
or truncated form fails only its own process, with the reason."""
from __future__ import annotations

import zlib
from array import array

import pytest
from appcases import APPS_DIR

import pcli
from broker import keys
from pcli import api
from pd import form
from psim import psim
from psim.partition import partition

RING = APPS_DIR / "ring_v2.xml"
OTHER = APPS_DIR / "heat_v4.xml"


def submit(app, instance: bytes) -> dict:
    """`app` in 2 regions with `instance` as its form, as a client could send it."""
    split = partition(app, 2).tobytes()
    pid, token = api.control().submit(api.user(), app.read_bytes(), 2, {}, {"rmap": {}, "options": {"level": 1},
                                      "verbose": 0, "app_name": app.name}, split, instance)
    return api.Future(pid, token=token).result()


def test_a_split_process_gets_the_form_and_loads_it_not_the_xml(cluster):
    cluster.start("e1", slots=2)
    res = pcli.run(str(RING), regions=2)
    assert res["state"] == "finished", res["reason"]
    assert res["states"] == psim(str(RING))["states"]
    pid = max(pcli.ps(all=True))
    stored = api.control().r.get(keys.proc_instance(api.user(), pid))
    assert zlib.decompress(stored) == form.of_file(RING)


@pytest.mark.parametrize("forged, why", [
    (lambda f: f[:len(f) // 2], "not a faithful instance"),
    (lambda f: f.replace(b"\n", b"x", 1), "malformed (no cache key)"),
    (lambda f: f[:41] + form.of_file(OTHER)[41:], "not a faithful instance"),
], ids=["truncated", "no key", "another app's"])
def test_a_forged_instance_form_fails_its_process_with_the_reason(cluster, forged, why):
    cluster.start("e1", slots=2)
    pcli.run(str(OTHER), regions=2)                   # its form is in the cache
    res = submit(RING, forged(form.of_file(RING)))
    assert res["state"] == "failed"
    assert f"the instance form sent with the application is {why}" in res["reason"]
    assert pcli.run(str(RING), regions=2)["metrics"]["Delivered messages"] == 40


def test_a_files_partition_is_kept_by_content_and_regions(tmp_path):
    app = tmp_path / "ring.xml"                     # content of its own: its cache entries are this test's
    app.write_bytes(RING.read_bytes() + f"<!-- {tmp_path} -->\n".encode())
    two = partition(app, 2)
    assert len(two) == 4 and set(two) == {0, 1}
    kept = list(form.instcache.folder().glob(f"partitions/{form.instcache.content_key(app)}-2.u16"))
    assert len(kept) == 1 and array("H", kept[0].read_bytes()) == two
    kept[0].write_bytes(array("H", [1, 1, 0, 0]).tobytes())
    assert list(partition(app, 2)) == [1, 1, 0, 0]       # taken from the cache, not computed again
