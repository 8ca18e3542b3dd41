"""Printed digits: the embedded natural-shift set for the digits zoo, generated offline from matplotlib's fonts.

The zoo learned scikit-learn's handwritten digits (harness/data/digits.py). Here the same ten classes are
typeset instead of written, and rasterised the way ``load_digits`` was made (UCI optdigits): a 32x32
binary bitmap of the centred, height-normalised glyph, its on-pixels counted in 4x4 blocks to an 8x8
image of 0..16, which then takes the digits' own path to 32x32 RGB (``blocks_to_rgb``). Two levels:

- ``printed``: upright DejaVu, STIX and Computer Modern faces (regular and bold), rotation within 5
  degrees, glyph height 85-100% of the box, stroke thinned or thickened a little;
- ``printed-hard``: italic and oblique faces, rotation within 15 degrees, height 70-100%, widths
  condensed to 60-100%, heavier stroke changes.

Each level is seeded (``SEED`` plus the level's index) and fixed: ``PER_CLASS`` images per digit, in
class order, so the set and its fingerprint are the same on every machine with the same fonts. The generator
(``typeset_blocks``) takes any glyphs: harness/data/printed_letters.py draws its OOD letters with it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from harness.data.digits import DigitsSource, blocks_to_rgb
from harness.registry import DATASETS

SEED = 20261206
PER_CLASS = 50
BITMAP = 32  # the optdigits bitmap side; 4x4 blocks give 8x8
RENDER = 96  # glyphs are drawn this large, then transformed and reduced


@dataclass(frozen=True)
class Level:
    fonts: tuple[str, ...]  # file names in matplotlib's mpl-data/fonts/ttf
    max_rotation: float  # degrees, either way
    height: tuple[float, float]  # glyph height as a fraction of the bitmap
    width: tuple[float, float]  # horizontal squeeze factor
    stroke: tuple[int, ...]  # morphological steps at RENDER scale: <0 thins, >0 thickens


LEVELS = {
    "printed": Level(
        fonts=("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
               "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf",
               "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf"),
        max_rotation=5.0, height=(0.85, 1.0), width=(0.9, 1.0), stroke=(0, 1, 2, 3)),
    "printed-hard": Level(
        fonts=("DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf", "DejaVuSerif-Italic.ttf",
               "DejaVuSerif-BoldItalic.ttf", "DejaVuSansMono-Oblique.ttf", "STIXGeneralItalic.ttf",
               "STIXGeneralBolIta.ttf", "cmti10.ttf"),
        max_rotation=15.0, height=(0.7, 1.0), width=(0.6, 1.0), stroke=(-1, 0, 2, 4, 6)),
}


def font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def render_blocks(glyph: str, font: ImageFont.FreeTypeFont, rotation: float, height: float, width: float,
                  stroke: int) -> np.ndarray:
    """One glyph (a digit ``str(d)``, a letter) as optdigits stores it: 8x8 counts (0..16) of a centred 32x32
    binary bitmap."""
    canvas = Image.new("L", (2 * RENDER, 2 * RENDER), 0)
    ImageDraw.Draw(canvas).text((RENDER // 2, RENDER // 4), glyph, fill=255, font=font)
    for _ in range(abs(stroke)):
        canvas = canvas.filter(ImageFilter.MaxFilter(3) if stroke > 0 else ImageFilter.MinFilter(3))
    canvas = canvas.rotate(rotation, resample=Image.BILINEAR)
    ink = canvas.crop(canvas.getbbox())
    glyph_h = max(1, round(BITMAP * height))
    glyph_w = max(1, min(BITMAP, round(ink.width * glyph_h / ink.height * width)))
    ink = ink.resize((glyph_w, glyph_h), Image.BILINEAR)
    bitmap = np.zeros((BITMAP, BITMAP), dtype=np.int64)
    top, left = (BITMAP - glyph_h) // 2, (BITMAP - glyph_w) // 2
    bitmap[top:top + glyph_h, left:left + glyph_w] = np.asarray(ink) >= 128
    return bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3))


def typeset_blocks(glyphs: Sequence[str], per_glyph: int, level: str,
                   seed: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(N x 8 x 8 counts, N labels): ``per_glyph`` renderings of each glyph, glyph by glyph, with ``level``'s
    randomisation drawn from ``default_rng(seed)``; a glyph's label is its position in ``glyphs``."""
    spec = LEVELS[level]
    rng = np.random.default_rng(list(seed))
    fonts = {name: ImageFont.truetype(str(font_dir() / name), RENDER) for name in spec.fonts}
    blocks, labels = [], []
    for label, glyph in enumerate(glyphs):
        for _ in range(per_glyph):
            font = fonts[spec.fonts[rng.integers(len(spec.fonts))]]
            blocks.append(render_blocks(
                glyph, font, rotation=float(rng.uniform(-spec.max_rotation, spec.max_rotation)),
                height=float(rng.uniform(*spec.height)), width=float(rng.uniform(*spec.width)),
                stroke=int(spec.stroke[rng.integers(len(spec.stroke))])))
            labels.append(label)
    return np.stack(blocks), np.asarray(labels, dtype=np.int64)


@lru_cache(maxsize=None)
def printed_blocks(level: str) -> tuple[np.ndarray, np.ndarray]:
    """(N x 8 x 8 counts, N labels) for a level: PER_CLASS images of each digit, class by class."""
    return typeset_blocks([str(digit) for digit in range(10)], PER_CLASS, level, [SEED, list(LEVELS).index(level)])


@DATASETS.register("printed-digits")
class PrintedDigitsSource(DigitsSource):
    """Typeset digits 0-9 in the embedded digits' format; ``split`` picks the level."""

    kind = "printed-digits"
    splits = tuple(LEVELS)

    def __init__(self, split: str = "printed", name: str = "printed-digits", **_: object) -> None:
        super().__init__(split=split, name=name)

    @staticmethod
    def arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
        blocks, labels = printed_blocks(split)
        return blocks_to_rgb(blocks), labels
