"""BabaIsAI's picture, drawn as Baba Is AI draws it: 32-pixel tiles with grey grid lines,
each object a shape in its colour, and each rule block a light square holding its word,
so that a person in the viewer, or a vision model, can read the rules.

Tiles are drawn three times larger and averaged down (upstream's anti-aliasing), and kept
once drawn: a board has a handful of distinct tiles.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from balrog_worker.envs.babaisai.engine import DISPLAY, Board, Thing

TILE = 32  # upstream's tile size, in pixels
_SCALE = 3  # drawn at 3x, then averaged down
_SIZE = TILE * _SCALE
# MiniGrid's colours, which upstream uses.
COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255),
           "purple": (112, 39, 195), "yellow": (255, 255, 0), "grey": (100, 100, 100),
           "white": (255, 255, 255)}
GRID_LINE = (100, 100, 100)
RULE_LIGHT = (235, 235, 235)


def board_frame(board: Board) -> np.ndarray:
    """The board as an RGB image, TILE pixels a cell."""
    image = np.zeros((board.height * TILE, board.width * TILE, 3), dtype=np.uint8)
    for y in range(board.height):
        for x in range(board.width):
            image[y * TILE:(y + 1) * TILE, x * TILE:(x + 1) * TILE] = tile(board.top(x, y))
    return image


@functools.lru_cache(maxsize=256)
def tile(thing: Thing | None) -> np.ndarray:
    """One cell's picture (what is on top of it)."""
    picture = Image.new("RGB", (_SIZE, _SIZE))
    draw = ImageDraw.Draw(picture)
    edge = round(0.031 * _SIZE)
    draw.rectangle([0, 0, edge, _SIZE - 1], fill=GRID_LINE)
    draw.rectangle([0, 0, _SIZE - 1, edge], fill=GRID_LINE)
    if thing is not None:
        _draw(draw, thing)
    pixels = np.asarray(picture, dtype=np.float32)
    small = pixels.reshape(TILE, _SCALE, TILE, _SCALE, 3).mean(axis=(1, 3))
    return small.round().astype(np.uint8)


def _box(left: float, right: float, top: float, bottom: float) -> list[float]:
    return [left * _SIZE, top * _SIZE, right * _SIZE - 1, bottom * _SIZE - 1]


def _draw(draw: ImageDraw.ImageDraw, thing: Thing) -> None:
    colour = COLOURS.get(thing.color, COLOURS["purple"])
    if thing.is_rule:
        draw.rectangle(_box(0.06, 0.94, 0.06, 0.94), fill=RULE_LIGHT)
        margin = 10 / 96  # upstream: the word on black, 10 of 96 pixels in
        draw.rectangle(_box(margin, 1 - margin, margin, 1 - margin), fill=(0, 0, 0))
        _word(draw, DISPLAY.get(thing.word or "", thing.word or "?"))
    elif thing.kind == "wall":  # the boundary
        draw.rectangle(_box(0, 1, 0, 1), fill=COLOURS["grey"])
    elif thing.kind == "fwall":
        draw.rectangle(_box(0.2, 0.8, 0.2, 0.8), fill=colour)
    elif thing.kind == "fball":
        draw.ellipse(_box(0.19, 0.81, 0.19, 0.81), fill=colour)
    elif thing.kind == "fdoor":
        for inset, fill in ((0.0, colour), (0.04, (0, 0, 0)), (0.08, colour), (0.12, (0, 0, 0))):
            draw.rectangle(_box(inset, 1 - inset, inset, 1 - inset), fill=fill)
        draw.ellipse(_box(0.67, 0.83, 0.42, 0.58), fill=colour)  # the handle
    elif thing.kind == "fkey":
        draw.rectangle(_box(0.50, 0.63, 0.31, 0.88), fill=colour)
        draw.rectangle(_box(0.38, 0.50, 0.59, 0.66), fill=colour)
        draw.rectangle(_box(0.38, 0.50, 0.81, 0.88), fill=colour)
        draw.ellipse(_box(0.37, 0.75, 0.09, 0.47), fill=colour)
        draw.ellipse(_box(0.50, 0.62, 0.22, 0.34), fill=(0, 0, 0))
    else:  # baba: a white triangle, as upstream draws the agent
        draw.polygon([(0.12 * _SIZE, 0.19 * _SIZE), (0.87 * _SIZE, 0.50 * _SIZE),
                      (0.12 * _SIZE, 0.81 * _SIZE)], fill=COLOURS["white"])


def _word(draw: ImageDraw.ImageDraw, word: str) -> None:
    """``word`` centred in the rule block, as large as fits its black square."""
    room = (1 - 2 * 10 / 96) * _SIZE - 6
    for size in (30, 26, 22, 18, 15, 12):
        font = ImageFont.load_default(size=size)
        left, top, right, bottom = draw.textbbox((0, 0), word, font=font)
        if right - left <= room:
            break
    x = (_SIZE - (right - left)) / 2 - left
    y = (_SIZE - (bottom - top)) / 2 - top
    draw.text((x, y), word, font=font, fill=RULE_LIGHT)
