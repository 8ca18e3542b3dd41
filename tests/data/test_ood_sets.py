"""The embedded OOD sets for the digits zoo: printed letters (near) and texture patches / block noise (far)."""
from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits

from harness.data.base import array_digest
from harness.data.digits import DigitsSource, blocks_to_rgb
from harness.data.printed_digits import LEVELS, printed_blocks
from harness.data.printed_letters import LETTERS, PER_LETTER, PrintedLettersSource, letter_blocks
from harness.data.sources import build_source
from harness.data.texture_patches import NOISE, PER_IMAGE, SOURCES, TexturePatchesSource, noise_blocks, texture_blocks
from harness.registry import DATASETS
from harness.suite import load_suite

# sha256 of printed_blocks(level) (int64 counts, then int64 labels) computed before render_blocks took a glyph
# string: generalising it to letters must leave the printed digits byte-identical.
PRINTED_DIGITS_SHA256 = {
    "printed": "c447a0a128de07d8b16afd11d7cc9bd1b4d66891f627d18c7f9fa3975110629d",
    "printed-hard": "794c23d651666ea25bb6c11d5b37f8b263ee8328bdd1467794ddb25367f033dd",
}
SETS = [(PrintedLettersSource, "letters", len(LETTERS) * PER_LETTER, list(LETTERS)),
        (TexturePatchesSource, "textures", len(SOURCES) * PER_IMAGE, list(SOURCES)),
        (TexturePatchesSource, "noise", NOISE, ["noise"])]


@pytest.mark.parametrize("level", list(LEVELS))
def test_printed_digits_unchanged_by_the_glyph_generalisation(level):
    blocks, labels = printed_blocks(level)
    digest = hashlib.sha256(blocks.astype(np.int64).tobytes() + labels.astype(np.int64).tobytes()).hexdigest()
    assert digest == PRINTED_DIGITS_SHA256[level]


@pytest.mark.parametrize("cls, split, size, class_names", SETS)
def test_ood_sets_have_the_digits_format(cls, split, size, class_names):
    source = cls(split)
    assert len(source) == size and source.images.shape == (size, 32, 32, 3) and source.images.dtype == np.uint8
    assert source.labels.dtype == np.int64 and source.class_names == class_names
    assert np.bincount(source.labels, minlength=len(class_names)).tolist() == [size // len(class_names)] * len(class_names)
    sample = source.load(0)
    assert sample.image.size == (32, 32) and sample.image.mode == "RGB" and sample.target == 0
    ids = [source.sample_id(i) for i in range(len(source))]
    assert len(set(ids)) == size and all(i.startswith(f"{split}/") for i in ids)
    digits_ids = {DigitsSource(s).sample_id(i) for s in ("train", "test") for i in range(len(DigitsSource(s)))}
    assert not digits_ids & set(ids)
    assert source.fingerprint()["content"] == cls(split).fingerprint()["content"]


@pytest.mark.parametrize("blocks_of, cls, split", [(letter_blocks, PrintedLettersSource, "letters"),
                                                    (texture_blocks, TexturePatchesSource, "textures"),
                                                    (noise_blocks, TexturePatchesSource, "noise")])
def test_block_counts_are_load_digits_values_on_the_digits_path(blocks_of, cls, split):
    blocks, labels = blocks_of()
    assert blocks.shape[1:] == (8, 8) and blocks.dtype == np.int64
    assert blocks.min() == 0 and blocks.max() == 16
    assert np.array_equal(cls(split).images, blocks_to_rgb(blocks)) and np.array_equal(cls(split).labels, labels)


def test_ood_sets_are_the_same_in_a_fresh_process():
    code = ("from harness.data.printed_letters import letter_blocks; "
            "from harness.data.texture_patches import texture_blocks, noise_blocks; "
            "from harness.data.base import array_digest; "
            "print(array_digest(*letter_blocks()), array_digest(*texture_blocks()), array_digest(*noise_blocks()))")
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert fresh == [array_digest(*letter_blocks()), array_digest(*texture_blocks()), array_digest(*noise_blocks())]


def test_letters_are_not_digits():
    letters = {image.tobytes() for image in PrintedLettersSource().images}
    assert len(letters) > 0.9 * len(LETTERS) * PER_LETTER, "the renderings vary"
    digits = {image.tobytes() for level in LEVELS for image in blocks_to_rgb(printed_blocks(level)[0])}
    digits |= {image.tobytes() for image in blocks_to_rgb(load_digits().images)}
    assert not letters & digits
    assert not {"I", "O"} & set(LETTERS) and len(LETTERS) == 24


def test_texture_patches_are_textured_and_noise_is_uniform():
    images = TexturePatchesSource("textures").images[..., 0].reshape(-1, 32 * 32)
    assert (images.min(axis=1) < images.max(axis=1)).all(), "no flat patch"
    assert len({row.tobytes() for row in images}) == len(images)
    counts = np.bincount(noise_blocks()[0].ravel(), minlength=17)
    assert len(counts) == 17 and counts.min() > 0.5 * counts.mean()


def test_unknown_split_is_a_one_line_error():
    with pytest.raises(ValueError, match="texture-patches has splits 'textures', 'noise', not 'test'"):
        TexturePatchesSource("test")
    with pytest.raises(ValueError, match="printed-letters has splits 'letters', not 'printed'"):
        PrintedLettersSource("printed")


def test_a_suite_loads_the_ood_sets(write_suite):
    assert DATASETS.get("printed-letters") is PrintedLettersSource
    assert DATASETS.get("texture-patches") is TexturePatchesSource
    path = write_suite({
        "name": "ood-sets", "version": 1,
        "models": [{"name": "resnet_digits", "source": "zoo"}],
        "datasets": [{"name": "digits-test", "kind": "digits", "split": "test"},
                     {"name": "letters", "kind": "printed-letters", "split": "letters"},
                     {"name": "textures", "kind": "texture-patches", "split": "textures"},
                     {"name": "noise", "kind": "texture-patches", "split": "noise"}],
        "tasks": [{"kind": "classification", "datasets": ["digits-test"]}],
    })
    suite = load_suite(str(path))
    sizes = {}
    for spec in suite.spec.datasets[1:]:
        source = build_source(spec, limit=16)
        sample = source.load(0)
        assert sample.image.size == (32, 32) and source.kind == spec.kind and source.split == spec.split
        sizes[spec.name] = len(source)
    assert sizes == {"letters": 16, "textures": 16, "noise": 16}
