"""Applications with coordinates and a known final state, and what a
picture of them must show, for the picture tests (psim and the cluster)."""
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.image import imread

from psim.pictures import DPI, HEAT_COLOURS, REGION_COLOURS, SIZE

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

GRID = """<?xml version="1.0"?>
<Graphs xmlns="https://poets-project.org/schemas/virtual-graph-schema-v3">
  <GraphType id="grid">
    <MessageTypes><MessageType id="m"><Message><Scalar name="v" type="uint32_t"/></Message></MessageType></MessageTypes>
    <DeviceTypes>
      <DeviceType id="cell">
        <Properties>{props}</Properties>
        <State><Scalar name="temp" type="float"/><Scalar name="n" type="uint32_t"/></State>
        <ReadyToSend><![CDATA[ *readyToSend = deviceState->n < 2 ? RTS_FLAG_out : 0; ]]></ReadyToSend>
        <InputPin name="in" messageTypeId="m"><OnReceive><![CDATA[ ]]></OnReceive></InputPin>
        <OutputPin name="out" messageTypeId="m"><OnSend><![CDATA[ deviceState->n++; ]]></OnSend></OutputPin>
      </DeviceType>
    </DeviceTypes>
  </GraphType>
  <GraphInstance id="g" graphTypeId="grid">
    <DeviceInstances>{devices}</DeviceInstances>
    <EdgeInstances>{edges}</EdgeInstances>
  </GraphInstance>
</Graphs>
"""
# where a cell is: its properties, and the values of cell (x, y)
PLACES = {
    "xy": ('<Scalar name="x" type="uint32_t"/><Scalar name="y" type="uint32_t"/>', '"x": {x}, "y": {y}'),
    "coords": ('<Array name="coords" type="float" length="2"/>', '"coords": [{x}, {y}]'),
    "none": ('<Scalar name="row" type="uint32_t"/><Scalar name="col" type="uint32_t"/>', '"row": {x}, "col": {y}'),
}


def grid_app(w: int, h: int, place: str = "xy") -> str:
    """A w x h grid whose cells are hot (temp 100) in the left half and cold
    (0) in the right; each cell sends twice to its right-hand neighbour
    (2 w h deliveries), which leaves temp as it was.  place: how the cells'
    properties say where they are (PLACES)."""
    props, values = PLACES[place]
    devices = "".join(f'<DevI id="c{x}_{y}" type="cell"><P>{values.format(x=x, y=y)}</P>'
                      f'<S>"temp": {100 if x < w // 2 else 0}</S></DevI>' for y in range(h) for x in range(w))
    edges = "".join(f'<EdgeI path="c{(x + 1) % w}_{y}:in-c{x}_{y}:out"/>' for y in range(h) for x in range(w))
    return GRID.format(props=props, devices=devices, edges=edges)


def halves(w: int, h: int) -> dict[str, int]:
    """The region map of grid_app: region 0 the left half, 1 the right."""
    return {f"c{x}_{y}": int(x >= w // 2) for y in range(h) for x in range(w)}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def png(path: Path) -> np.ndarray:
    """The picture's pixels (RGB, 0-255), once it is known to be a PNG of
    psim/pictures.py's size."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = imread(path)
    assert pixels.shape[:2] == (int(SIZE[1] * DPI), int(SIZE[0] * DPI))
    return (pixels[:, :, :3] * 255).round()


def where_colour(pixels: np.ndarray, rgba) -> tuple[int, float]:
    """How many pixels have this colour, and their mean column."""
    near = np.all(np.abs(pixels - np.asarray(rgba[:3]) * 255) <= 2, axis=2)
    return int(near.sum()), float(np.nonzero(near)[1].mean()) if near.any() else -1.0


def assert_left_and_right(pixels: np.ndarray, left, right) -> None:
    """The left half of the drawing is colour `left`, the right `right`:
    each covers a good part of the picture, `left` to the left."""
    (n_left, x_left), (n_right, x_right) = where_colour(pixels, left), where_colour(pixels, right)
    quarter = pixels.shape[0] * pixels.shape[1] / 4
    assert n_left > quarter / 2 and n_right > quarter / 2, (n_left, n_right)
    assert x_left < x_right, (x_left, x_right)


def hot_and_cold():
    heat = colormaps[HEAT_COLOURS]
    return heat(1.0), heat(0.0)


def region_colours(n: int):
    regions = colormaps[REGION_COLOURS].resampled(n)
    return [regions(r) for r in range(n)]
