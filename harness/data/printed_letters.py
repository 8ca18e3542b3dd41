"""Printed letters: an embedded near-OOD set for the digits zoo, typeset and rasterised exactly like printed digits.

The glyphs are Latin capitals instead of digits, drawn by the printed-digits generator
(``harness.data.printed_digits.typeset_blocks``: same fonts, same ``printed`` level randomisation, same
optdigits rasterisation to 8x8 counts of 0..16, then ``blocks_to_rgb``), so the only thing that changed
from the zoo's shifted-but-known printed digits is the class: none of them is a digit. One split,
``letters``: the 24 capitals A-Z without ``I`` and ``O``, which in most faces are near-copies of 1 and 0
(a 1 without its flag, a wider 0) and so no fair out-of-distribution input, ``PER_LETTER`` images each,
letter by letter, seeded with ``SEED``. Labels are a letter's position in ``LETTERS``
(class names: the letters); sample ids are ``letters/0000``..., never a digits split's.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from harness.data.digits import DigitsSource, blocks_to_rgb
from harness.data.printed_digits import typeset_blocks
from harness.registry import DATASETS

SEED = 20261207
PER_LETTER = 13
LEVEL = "printed"  # the printed-digits level whose fonts and randomisation the letters take
LETTERS = tuple(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in "IO")


@lru_cache(maxsize=None)
def letter_blocks() -> tuple[np.ndarray, np.ndarray]:
    """(N x 8 x 8 counts 0..16, N labels): PER_LETTER renderings of each of LETTERS, letter by letter."""
    return typeset_blocks(LETTERS, PER_LETTER, LEVEL, [SEED])


@DATASETS.register("printed-letters")
class PrintedLettersSource(DigitsSource):
    """Typeset capital letters in the embedded digits' format: out-of-distribution for the digits zoo."""

    kind = "printed-letters"
    splits = ("letters",)

    def __init__(self, split: str = "letters", name: str = "printed-letters", **_: object) -> None:
        super().__init__(split=split, name=name)
        self.class_names = list(LETTERS)

    @staticmethod
    def arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
        blocks, labels = letter_blocks()
        return blocks_to_rgb(blocks), labels
