"""The embedded printed-digits shift set: load_digits' format, fixed and seeded, and a real shift for the zoo."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.neighbors import KNeighborsClassifier

from harness.data.base import array_digest
from harness.data.digits import blocks_to_rgb, digits_arrays
from harness.data.printed_digits import LEVELS, PER_CLASS, PrintedDigitsSource, printed_blocks


@pytest.mark.parametrize("level", list(LEVELS))
def test_printed_digits_have_load_digits_format_and_balanced_classes(level):
    blocks, labels = printed_blocks(level)
    assert blocks.shape == (10 * PER_CLASS, 8, 8) and blocks.dtype.kind == "i"
    assert blocks.min() == 0 and blocks.max() == 16  # counts of a 4x4 block of a binary bitmap
    assert np.bincount(labels).tolist() == [PER_CLASS] * 10
    assert (blocks.reshape(len(blocks), -1).sum(axis=1) > 0).all(), "every glyph left ink"
    source = PrintedDigitsSource(level)
    sample = source.load(0)
    assert sample.image.size == (32, 32) and sample.image.mode == "RGB" and sample.target == 0
    assert np.array_equal(source.images, blocks_to_rgb(blocks))


def test_handwritten_pixels_still_come_from_the_shared_block_path():
    every = {image.tobytes() for image in blocks_to_rgb(load_digits().images)}
    for split in ("train", "test"):
        images, _ = digits_arrays()[split]
        assert all(image.tobytes() in every for image in images)


def test_printed_digits_are_the_same_in_a_fresh_process():
    code = ("from harness.data.printed_digits import printed_blocks; from harness.data.base import array_digest; "
            "print(array_digest(*printed_blocks('printed-hard')))")
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert fresh == array_digest(*printed_blocks("printed-hard"))


def test_printed_digits_are_a_real_and_graded_shift():
    """A nearest-neighbour reader of handwriting reads typeset digits well above chance, and worse at the
    harder level: the glyphs are the right digits, and the second level is a further shift."""
    digits = load_digits()
    reader = KNeighborsClassifier(3).fit(digits.data, digits.target)
    accuracy = {level: float((reader.predict(printed_blocks(level)[0].reshape(-1, 64)) == printed_blocks(level)[1])
                             .mean()) for level in LEVELS}
    print(f"3-NN trained on load_digits: {accuracy}")
    assert 0.6 < accuracy["printed"] < 0.98
    assert 0.2 < accuracy["printed-hard"] < accuracy["printed"] - 0.2


def test_unknown_level_is_a_one_line_error():
    with pytest.raises(ValueError, match="printed-digits has splits 'printed', 'printed-hard', not 'test'"):
        PrintedDigitsSource("test")
