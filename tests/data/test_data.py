"""Datasets: embedded digits split, image folders with class maps, corrupt files, subsets."""
from __future__ import annotations

import numpy as np
from PIL import Image
import pytest
import torch

from harness import run_suite
from harness.data.digits import DigitsSource, digits_arrays
from harness.data.folder import ImageFolderSource
from harness.data.sources import build_source
from harness.schema import Where, build
from harness.specs import DatasetSpec
from tests.conftest import MINI_IMAGENET, zoo_suite


def test_digits_split_is_fixed_stratified_and_pixel_space():
    arrays = digits_arrays()
    (train_x, train_y), (_, test_y) = arrays["train"], arrays["test"]
    assert (len(train_y), len(test_y)) == (1347, 450)
    assert train_x.shape[1:] == (32, 32, 3) and train_x.dtype == np.uint8
    assert np.bincount(test_y).min() >= 43  # stratified: every digit present ~45 times
    sample = DigitsSource("test").load(0)
    assert sample.image.size == (32, 32) and sample.image.mode == "RGB" and sample.target == test_y[0]
    assert sample.id == "test/0000"
    with pytest.raises(ValueError, match="splits"):
        DigitsSource("val")


def test_image_folder_class_map_keeps_the_1k_label_space(mini_imagenet):
    from harness.suite import SUITES_DIR

    source = ImageFolderSource(mini_imagenet / "val", class_map=SUITES_DIR / "maps/imagenet1k_wnids.txt",
                               num_classes=1000)
    labels = sorted({source.load(i).target for i in range(len(source))})
    assert labels == [281, 657, 967, 983]
    assert source.num_classes == 1000 and source.class_names[281] == "n02123045"
    assert len(source) == sum(len(v) for v in MINI_IMAGENET.values())
    plain = ImageFolderSource(mini_imagenet / "val")
    assert sorted({plain.load(i).target for i in range(len(plain))}) == [0, 1, 2, 3]


def _suite_with_folder(root, on_corrupt="fail"):
    suite = zoo_suite(["resnet_digits"])
    suite["datasets"] = [{"name": "folder", "kind": "imagefolder", "root": str(root), "on_corrupt": on_corrupt,
                          "num_classes": 10}]  # four folders labelled 0-3 in the zoo model's 10 classes
    return suite


def test_corrupt_images_fail_by_default_and_are_counted_when_skipped(tmp_path, write_suite, mini_imagenet):
    import shutil

    root = tmp_path / "val"
    shutil.copytree(mini_imagenet / "val", root)
    (root / "n03773504" / "ILSVRC2012_val_00000099.JPEG").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    failed = run_suite(write_suite(_suite_with_folder(root)), out=tmp_path / "a", progress=False)
    assert failed["status"].iloc[0] == "failed"
    assert "ILSVRC2012_val_00000099.JPEG" in failed["error"].iloc[0]
    skipped = run_suite(write_suite(_suite_with_folder(root, "skip")), out=tmp_path / "b", progress=False)
    values = skipped.set_index("metric")
    assert values.loc["skipped_corrupt", "value"] == 1
    assert values.loc["top1", "n"] == len(ImageFolderSource(root)) - 1


def test_seeded_subset_is_reproducible_and_id_lists_select_files(tmp_path, mini_imagenet):
    where = Where(tmp_path / "s.yaml", 1, "datasets[0]")
    spec = build(DatasetSpec, {"name": "d", "kind": "digits", "subset": {"n": 25, "seed": 3}}, where)
    first, second = build_source(spec), build_source(spec)
    assert len(first) == 25 and first.indices == second.indices
    other = build_source(build(DatasetSpec, {"name": "d", "kind": "digits", "subset": {"n": 25, "seed": 4}}, where))
    assert other.indices != first.indices
    assert len(build_source(spec, limit=10)) == 10 and build_source(spec, limit=10).indices == first.indices[:10]

    ids = tmp_path / "ids.txt"
    ids.write_text("# two images\nn07920052/ILSVRC2012_val_00000004.JPEG\nn02123045/ILSVRC2012_val_00000001.JPEG\n")
    folder_spec = build(DatasetSpec, {"name": "f", "kind": "imagefolder", "root": str(mini_imagenet / "val"),
                                      "subset": {"ids": str(ids)}}, where)
    chosen = build_source(folder_spec)
    assert len(chosen) == 2 and chosen.describe()["subset"] == "ids from ids.txt"
    ids.write_text("n07920052/missing.JPEG\n")
    with pytest.raises(ValueError, match="ids.txt: 1 id\\(s\\) not in the dataset"):
        build_source(folder_spec)


def test_imagenet_suite_runs_on_a_miniature_folder_with_random_init_models(tmp_path, mini_imagenet):
    """The shipped suite, unchanged but for random weights (no hub here) and a tiny model subset."""
    from harness.run import run_suite as run_with_outcome
    from harness.suite import load_suite

    suite = load_suite("classification-imagenet", data_root=str(mini_imagenet))
    for model in suite.spec.models:
        model.pretrained = False
    outcome = run_with_outcome(suite, out=tmp_path, models=["resnet50", "deit_small*"], limit=3, workers=0,
                        batch_size=2, progress=False)
    assert outcome.failed == []
    rows = outcome.frame.set_index(["model", "metric"])
    assert rows.loc[("resnet50", "top1"), "n"] == 3
    assert rows.loc[("resnet50", "top1"), "family"] == "cnn"
    assert rows.loc[("deit_small_patch16_224", "top5"), "family"] == "transformer"
    assert rows.loc[("resnet50", "top1"), "weights"] == "random-init"


def test_batched_fast_path_equals_the_per_image_timm_transform():
    from harness.data.loader import EvalView, collate
    from harness.data.preprocess import Preprocess
    from harness.zoo import ZOO_MODELS

    source = DigitsSource("test")
    preprocess = Preprocess.from_timm_config(ZOO_MODELS.get("vit_digits").pretrained_cfg())
    view = EvalView(source, preprocess)
    assert view.batched
    fast = collate(view.__getitems__([3, 1, 4, 1, 5]))
    slow = collate([view[i] for i in [3, 1, 4, 1, 5]])
    assert torch.equal(fast.images, slow.images) and torch.equal(fast.labels, slow.labels)
    cropped = EvalView(source, Preprocess(input_size=(3, 32, 32), crop_pct=0.875))
    assert not cropped.batched  # resize to 36 then crop: not the identity, so the per-image path is used


def test_image_folder_whose_class_folders_hold_no_images_is_an_error_before_anything_runs(tmp_path, write_suite):
    from harness.schema import SuiteError
    from harness.suite import load_suite

    root = tmp_path / "val"
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        (root / name / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=rf"^{root}: its 2 class folder\(s\) hold no images"):
        ImageFolderSource(root)
    suite = _suite_with_folder(root)
    path = write_suite(suite)
    with pytest.raises(SuiteError) as info:
        load_suite(str(path))
    assert str(info.value).startswith(f"{path}:") and f"datasets[0].root: {root}: its 2 class folder(s) hold no " \
        "images" in str(info.value) and "\n" not in str(info.value)


def _gray_photo() -> np.ndarray:
    import skimage.data

    return skimage.data.camera()[::4, ::4]  # 128 x 128 uint8, a real photo


def _rgb_photo() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut()[::4, ::4]  # 128 x 128 x 3 uint8


def _save(image: Image.Image, path) -> object:
    image.save(path)
    with Image.open(path) as check:
        assert check.mode == image.mode or (image.mode, check.mode) == ("I;16B", "I;16B"), (image.mode, check.mode)
    return path


@pytest.mark.parametrize("mode,suffix", [("I;16", ".png"), ("I;16", ".tif"), ("I;16B", ".tif")])
def test_16_bit_grey_is_scaled_not_clipped(tmp_path, mode, suffix):
    from harness.data.folder import open_rgb

    grey8 = _gray_photo()
    grey16 = grey8.astype(np.uint16) * 257  # the 8-bit photo at 16-bit depth: 255 -> 65535
    raw = grey16.astype(">u2" if mode == "I;16B" else "<u2").tobytes()
    path = _save(Image.frombytes(mode, grey8.shape[::-1], raw), tmp_path / f"photo{suffix}")
    decoded = np.asarray(open_rgb(path))
    assert decoded.shape == (*grey8.shape, 3) and decoded.dtype == np.uint8
    assert np.array_equal(decoded, np.repeat(grey8[..., None], 3, axis=-1))  # PIL's convert saturates ~all of it


def test_float_grey_in_unit_range_is_scaled_and_other_floats_and_int32_are_refused(tmp_path):
    from harness.data.base import CorruptImageError
    from harness.data.folder import open_rgb

    grey8 = _gray_photo()
    unit = _save(Image.fromarray(grey8.astype(np.float32) / 255), tmp_path / "unit.tif")
    assert np.array_equal(np.asarray(open_rgb(unit))[..., 0], grey8)
    wide = _save(Image.fromarray(grey8.astype(np.float32)), tmp_path / "wide.tif")
    with pytest.raises(CorruptImageError, match=r"wide\.tif: float pixels \(mode F\) must lie in \[0, 1\]"):
        open_rgb(wide)
    int32 = _save(Image.fromarray(grey8.astype(np.int32) * 257), tmp_path / "int32.tif")
    with pytest.raises(CorruptImageError, match=r"int32\.tif: 32-bit integer pixels \(mode I\)"):
        open_rgb(int32)


@pytest.mark.parametrize("mode", ["L", "1", "LA", "RGBA", "CMYK", "P", "P+transparency", "RGB"])
def test_8_bit_modes_decode_to_the_photo(tmp_path, mode):
    from harness.data.folder import open_rgb

    rgb = Image.fromarray(_rgb_photo())
    grey = Image.fromarray(_gray_photo())
    alpha = Image.fromarray((np.indices(grey.size)[0] % 256).astype(np.uint8))  # a varying alpha channel
    if mode == "L":
        image, expected = grey, grey.convert("RGB")
    elif mode == "1":
        image = grey.point(lambda v: 255 if v > 127 else 0).convert("1")
        expected = Image.fromarray(np.repeat((np.asarray(grey) > 127)[..., None] * np.uint8(255), 3, axis=-1))
    elif mode == "LA":
        image, expected = Image.merge("LA", (grey, alpha)), grey.convert("RGB")
    elif mode == "RGBA":
        image, expected = Image.merge("RGBA", (*rgb.split(), alpha)), rgb
    elif mode == "CMYK":
        image, expected = rgb.convert("CMYK"), rgb
    elif mode.startswith("P"):
        image = rgb.quantize(64)
        expected = image.convert("RGB")  # the palette colours
        if mode == "P+transparency":
            image.info["transparency"] = 0
    else:
        image, expected = rgb, rgb
    path = tmp_path / ("photo.tif" if mode == "CMYK" else "photo.png")
    image.save(path, **({"transparency": 0} if mode == "P+transparency" else {}))
    with Image.open(path) as check:
        assert check.mode == image.mode
    decoded = open_rgb(path)
    assert decoded.mode == "RGB" and np.array_equal(np.asarray(decoded), np.asarray(expected))
