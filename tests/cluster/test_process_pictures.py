"""Pictures of a cluster's processes through pcli: `plot PID FILE` (each
region's deliveries over time, api.series) and `picture PID FILE --field F
| --regions` (an ended process's devices), and their errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pcli
from appcases import APPS_DIR
from conftest import ROOT, wait_for
from pictureapps import assert_left_and_right, grid_app, halves, hot_and_cold, png, region_colours, where_colour, write
from tinyapp import forever_app

W, H = 12, 8


def pcli_c(*commands: str) -> subprocess.CompletedProcess:
    args = [a for c in commands for a in ("-c", c)]
    return subprocess.run([sys.executable, "-m", "pcli", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.fixture
def split_grid(cluster, tmp_path):
    """The grid app run to its end in two regions (left and right halves): its pid."""
    cluster.start("e1", slots=2)
    app = write(tmp_path / "grid.xml", grid_app(W, H))
    rmap = write(tmp_path / "rmap.json", json.dumps(halves(W, H)))
    out = pcli_c(f"run --rmap {rmap} {app}")
    assert "state finished" in out.stdout, out.stdout + out.stderr
    return 1


def test_plot_per_region_with_the_total(split_grid, tmp_path):
    series = pcli.series(split_grid)
    delivered = pcli.result(split_grid)["regions"]
    assert sorted(series) == [0, 1]
    for region, points in series.items():
        assert len(points) >= 2 and points[0][1] == 0                         # from its start...
        assert points[-1][1] == delivered[region]["Delivered messages"]      # ...to its final count
        assert [t for t, _ in points] == sorted(t for t, _ in points)
    out = pcli_c(f"plot {split_grid} {tmp_path / 'rate.png'}", f"plot {split_grid} {tmp_path / 'rate.svg'}")
    assert out.returncode == 0, out.stderr
    assert f"{2 * W * H} messages delivered in 2 region(s)" in out.stdout
    png(tmp_path / "rate.png")
    svg = (tmp_path / "rate.svg").read_text()
    assert "<svg" in svg and "load per region" in svg and "total" in svg


def test_heat_map_and_partition_of_an_ended_process(split_grid, tmp_path):
    out = pcli_c(f"picture {split_grid} {tmp_path / 'heat.png'} --field temp",
                 f"picture {split_grid} {tmp_path / 'split.png'} --regions")
    assert out.returncode == 0, out.stderr
    assert f"{W * H} devices in {tmp_path / 'heat.png'}" in out.stdout
    assert_left_and_right(png(tmp_path / "heat.png"), *hot_and_cold())
    assert_left_and_right(png(tmp_path / "split.png"), *region_colours(2))


def test_partition_of_a_split_process_is_metis_as_psim_draws_it(cluster, tmp_path):
    # regions=2: the process travels with its instance form, which picture reads instead of the XML
    cluster.start("e1", slots=2)
    app = write(tmp_path / "grid.xml", grid_app(W, H))
    pid = pcli.run(str(app), regions=2, async_=True).pid
    pcli.block(pid)
    out = pcli_c(f"picture {pid} {tmp_path / 'cluster.png'} --regions")
    assert out.returncode == 0, out.stderr
    psim = subprocess.run([str(Path(sys.executable).parent / "psim"), "--snapshot-png", str(tmp_path / "psim.png"),
                           "--partition", "2", str(app)], capture_output=True, text=True, timeout=120)
    assert psim.returncode == 0, psim.stderr
    drawn = [png(tmp_path / name) for name in ("cluster.png", "psim.png")]
    for colour in region_colours(2):
        counts = [where_colour(pixels, colour)[0] for pixels in drawn]
        assert counts[0] > 10_000 and abs(counts[0] - counts[1]) < counts[0] / 50, counts


def test_a_process_without_coordinates_is_laid_out(cluster, tmp_path):
    cluster.start("e1", slots=2)
    rmap = write(tmp_path / "rmap.json", '{"n2": 1, "n3": 1}')
    out = pcli_c(f"run --rmap {rmap} {APPS_DIR / 'ring_v2.xml'}", f"picture 1 {tmp_path / 'ring.png'} --regions")
    assert out.returncode == 0 and "4 devices in" in out.stdout, out.stderr
    pixels = png(tmp_path / "ring.png")
    for colour in region_colours(2):                                  # two dots of each region's colour
        assert where_colour(pixels, colour)[0] > 1000


@pytest.mark.parametrize("command, message", [
    ("picture 1 {tmp}/p.png --field nope", "no field 'nope' in the state or properties"),
    ("picture 1 {tmp}/p.png --field temp --xy a,b", "no device type has the coordinate properties a,b"),
    ("picture 1 {tmp}/p.bmp --regions", "a picture's file name ends in .png or .svg"),
    ("picture 99 {tmp}/p.png --regions", "picture: no process 99"),
    ("plot 99 {tmp}/p.png", "plot: no process 99"),
])
def test_bad_requests_fail_with_the_reason(split_grid, tmp_path, command, message):
    out = pcli_c(command.format(tmp=tmp_path))
    assert out.returncode == 1 and message in out.stderr, out.stderr
    assert not list(tmp_path.glob("p.*"))


def test_a_running_process_is_plotted_but_not_pictured_nor_once_killed(cluster, tmp_path):
    cluster.start("e1")
    future = pcli.run(forever_app("pictured"), async_=True)
    try:
        out = pcli_c(f"picture {future.pid} {tmp_path / 'p.png'} --field n")
        assert out.returncode == 1
        assert f"process {future.pid} is still " in out.stderr and "drawn from its result" in out.stderr
        wait_for(lambda: len(pcli.series(future.pid).get(0, [])) >= 3)      # loaded, then two progress reports
        out = pcli_c(f"plot {future.pid} {tmp_path / 'live.png'}")
        assert out.returncode == 0 and "in 1 region(s)" in out.stdout, out.stderr
        png(tmp_path / "live.png")
    finally:
        pcli.kill(future.pid)
    out = pcli_c(f"picture {future.pid} {tmp_path / 'p.png'} --field n")       # a forever app ends with no result
    assert out.returncode == 1 and f"process {future.pid} ended with no result to draw (killed by" in out.stderr
