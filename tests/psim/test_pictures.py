"""psim's pictures through the psim command: --plot (the message rate) and
--snapshot-png (devices coloured by a field, or by region), PNG and SVG,
and the errors of bad requests."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pictureapps import (assert_left_and_right, grid_app, halves, hot_and_cold, png, region_colours, where_colour,
                         write)
from psim.series import Series

PSIM = Path(sys.executable).parent / "psim"


def psim(*args, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([str(PSIM), *map(str, args)], capture_output=True, text=True, timeout=120)
    if check:
        assert out.returncode == 0, out.stderr
    return out


@pytest.fixture
def grid(tmp_path) -> Path:
    return write(tmp_path / "grid.xml", grid_app(12, 8))


def test_rate_plot_and_its_series(grid, tmp_path):
    out = psim("-r", "--plot", tmp_path / "rate.png", grid)
    res = json.loads(out.stdout)
    rate = res["rate"]
    assert res["metrics"]["Delivered messages"] == 2 * 12 * 8
    assert rate["seconds"][0] == 0 and rate["delivered"][0] == 0 and rate["sends"][0] == 0
    assert rate["delivered"][-1] == 2 * 12 * 8 and rate["sends"][-1] == res["metrics"]["Sends"]
    assert rate["seconds"] == sorted(rate["seconds"]) and len(rate["seconds"]) >= 2
    png(tmp_path / "rate.png")
    human = psim("--plot", tmp_path / "rate.svg", grid).stdout
    assert f"drawn to {tmp_path / 'rate.svg'}" in human
    svg = (tmp_path / "rate.svg").read_text()
    assert svg.startswith("<?xml") and "<svg" in svg and "messages per second" in svg


def test_heat_map_colours_each_device_by_its_field(grid, tmp_path):
    picture = tmp_path / "heat.png"
    psim("-q", "--snapshot-png", picture, "--field", "temp", grid)
    hot, cold = hot_and_cold()
    assert_left_and_right(png(picture), hot, cold)
    psim("-q", "--snapshot-png", tmp_path / "heat.svg", "--field", "temp", grid)
    assert "<svg" in (tmp_path / "heat.svg").read_text()


def test_coordinates_from_a_coords_array(tmp_path):
    app = write(tmp_path / "coords.xml", grid_app(12, 8, place="coords"))
    picture = tmp_path / "heat.png"
    psim("-q", "--snapshot-png", picture, "--field", "temp", app)
    assert_left_and_right(png(picture), *hot_and_cold())


def test_scattered_devices_are_drawn_as_points(tmp_path):
    # column 1 moved to x = 40: the x values are not evenly spaced, so no grid of cells but a dot a device
    app = write(tmp_path / "sparse.xml", grid_app(12, 8).replace('"x": 1,', '"x": 40,'))
    picture = tmp_path / "sparse.png"
    psim("-q", "--snapshot-png", picture, "--field", "temp", app)
    pixels = png(picture)
    for colour in hot_and_cold():
        count, _ = where_colour(pixels, colour)
        assert 1000 < count < pixels.shape[0] * pixels.shape[1] / 10, count      # dots, not an image


def test_partition_picture_of_a_region_map(grid, tmp_path):
    picture = tmp_path / "split.png"
    rmap = write(tmp_path / "rmap.json", json.dumps(halves(12, 8)))
    out = psim("--snapshot-png", picture, "--rmap", rmap, grid).stdout
    assert "96 devices in 2 region(s)" in out and "Exit" not in out          # drawn, not run
    assert_left_and_right(png(picture), *region_colours(2))


def test_partition_picture_of_metis(grid, tmp_path):
    picture = tmp_path / "metis.png"
    assert "in 3 region(s)" in psim("--snapshot-png", picture, "--partition", 3, grid).stdout
    png(picture)


@pytest.mark.parametrize("args, message", [
    (["--snapshot-png", "p.png", "--field", "nope"], "no field 'nope' in the state or properties of the devices "
                                                     "drawn; their numeric fields: temp, n, x, y"),
    (["--snapshot-png", "p.jpg", "--field", "temp"], "p.jpg: a picture's file name ends in .png or .svg"),
    (["--plot", "p.gif"], "p.gif: a picture's file name ends in .png or .svg"),
    (["--plot", "nowhere/p.png"], "nowhere/p.png: no such folder"),
    (["--field", "temp"], "--field names what --snapshot-png FILE colours by"),
    (["--snapshot-png", "p.png"], "--snapshot-png draws a field (--field NAME) or regions"),
    (["--snapshot-png", "p.png", "--partition", "0"], "--partition 0: a number of regions from 1"),
    (["--snapshot-png", "p.png", "--field", "temp", "--xy", "x,z"], "no device type has the coordinate "
                                                                     "properties x,z (numeric properties: x, y)"),
    (["--snapshot-png", "p.png", "--field", "temp", "--partition", "2"], "--partition N draws a split without "
                                                                          "running"),
    (["--plot", "p.png", "--inspect"], "--plot and --snapshot-png draw a run: not with --inspect"),
    (["--snapshot-png", "p.png", "--field", "temp", "--xy", "x"], "argument --xy: 'x': give two property names"),
])
def test_bad_requests_fail_with_the_reason(grid, tmp_path, args, message):
    out = psim(*args, grid, check=False)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert out.stderr.splitlines()[-1].startswith("psim: ") and not list(tmp_path.glob("p.*"))


def test_small_graphs_without_coordinates_are_laid_out_from_their_edges(tmp_path):
    # 4 rows of 6 cells, each row a ring of its own: 4 rings side by side, 3 hot and 3 cold cells in each
    app = write(tmp_path / "rows.xml", grid_app(6, 4, place="none"))
    picture = tmp_path / "rings.png"
    psim("-q", "--snapshot-png", picture, "--field", "temp", app)
    pixels = png(picture)
    hot, cold = (where_colour(pixels, colour)[0] for colour in hot_and_cold())
    assert hot > 2000 and abs(hot - cold) < hot / 5, (hot, cold)         # 12 dots each (a little more of the
    assert hot < pixels.shape[0] * pixels.shape[1] / 10                     # cold one is in the colour bar)


def test_big_graphs_without_coordinates_name_the_properties_there_are(tmp_path):
    app = write(tmp_path / "rows.xml", grid_app(40, 26, place="none"))     # 1040 devices: too many to lay out
    out = psim("--snapshot-png", tmp_path / "p.png", "--field", "temp", app, check=False)
    assert out.returncode == 2
    assert ("no device type has coordinates (properties x and y, or coords[2]), and over 1000 devices are too many "
            "to lay out from their edges; the numeric properties: row, col (name two with --xy X,Y)") in out.stderr
    psim("-q", "--snapshot-png", tmp_path / "p.png", "--field", "temp", "--xy", "row,col", app)
    assert_left_and_right(png(tmp_path / "p.png"), *hot_and_cold())


def test_a_long_series_keeps_at_most_its_cap_spread_over_the_run():
    series = Series(cap=100)
    for i in range(10_000):
        series.add(i * 0.01, i)
    series.add(100.0, 10_000, last=True)
    t, counts = series.columns()
    assert len(t) <= 101 and t[0] == 0 and counts[-1] == 10_000
    assert max(b - a for a, b in zip(t, t[1:])) < 100 / 25          # no long gap: spread over the whole run
