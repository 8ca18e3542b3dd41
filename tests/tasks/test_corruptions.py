"""Corruption robustness: parity with imagecorruptions, determinism, CE/mCE arithmetic, canonical readers, end to end."""
from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from imagecorruptions import corrupt
from PIL import Image

from harness.data.digits import digits_arrays
from harness.robustness.corruptions import (
    ALEXNET_IMAGENET_C, ALL, COMMON, SEEDED_BY_ARGUMENT, Corruptor, FillOnceCache, corrupt_array, expand_names,
    sample_seed,
)
from harness.run import run_suite
from harness.schema import SuiteError
from harness.suite import load_suite
from harness.tasks.corruption import CorruptionTask, ErrorProfile, corruption_errors
from tests.conftest import photo

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "corruption"
# Corruptions that draw random numbers (the others are deterministic functions of the image).
RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "snow", "frost", "fog",
          "elastic_transform", "speckle_noise", "spatter"}


def real_images() -> list[Image.Image]:
    """Three scikit-image photos (odd sizes up to 96 px) and two embedded digits (32x32)."""
    images, _ = digits_arrays()["test"]
    return [photo(name, max_side=96) for name in ("astronaut", "chelsea", "coffee")] + \
        [Image.fromarray(images[i]) for i in (0, 7)]


def library_reference(image: Image.Image, corruption: str, severity: int, seed: int) -> np.ndarray:
    """imagecorruptions called directly, with the global numpy RNG (and the seed argument) set to ``seed``."""
    np.random.seed(seed)
    kwargs = {"seed": seed} if corruption in SEEDED_BY_ARGUMENT else {}
    return corrupt(np.asarray(image), corruption_name=corruption, severity=severity, **kwargs)


# --- parity and determinism ----------------------------------------------------------------------------------

@pytest.mark.parametrize("number, corruption", list(enumerate(ALL)))
def test_corruptor_equals_imagecorruptions_called_directly(number, corruption):
    severity = number % 5 + 1  # every corruption once, every severity several times
    if corruption == "spatter":
        severity = 4  # severities 1-3 can hit the library's 0/0 on tiny images: tested separately below
    images = real_images()
    corruptor = Corruptor(corruption, severity, seed=3, sample_ids=list(range(100, 100 + len(images))))
    for index, image in enumerate(images):
        ours = np.asarray(corruptor(image, index))
        expected = library_reference(image, corruption, severity, sample_seed(3, corruption, severity, 100 + index))
        assert ours.dtype == np.uint8 and ours.shape == np.asarray(image).shape
        assert ours.tobytes() == expected.tobytes(), f"{corruption} s{severity} differs on image {index}"


def test_spatter_with_no_spatter_returns_the_clean_image_where_the_library_divides_zero_by_zero():
    images, _ = digits_arrays()["test"]
    degenerate = []
    for i in range(60):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            library_reference(Image.fromarray(images[i]), "spatter", 1, seed=i)
        if any("invalid value" in str(w.message) for w in caught):
            degenerate.append(i)
    assert degenerate, "expected some 32x32 digits without spatter at severity 1"
    for i in degenerate:
        assert corrupt_array(images[i], "spatter", 1, seed=i).tobytes() == images[i].tobytes()
    healthy = next(i for i in range(60) if i not in degenerate)
    expected = library_reference(Image.fromarray(images[healthy]), "spatter", 1, seed=healthy)
    assert corrupt_array(images[healthy], "spatter", 1, seed=healthy).tobytes() == expected.tobytes()


def test_same_seed_same_bytes_in_any_order_and_global_rng_untouched():
    images = real_images()
    ids = list(range(len(images)))
    for corruption in ALL:
        forward = Corruptor(corruption, 3, seed=0, sample_ids=ids)
        backward = Corruptor(corruption, 3, seed=0, sample_ids=ids)
        np.random.seed(123)
        before = np.random.random()
        np.random.seed(123)
        first = [np.asarray(forward(image, i)).tobytes() for i, image in enumerate(images)]
        assert np.random.random() == before, f"{corruption} changed the caller's numpy RNG"
        second = [np.asarray(backward(images[i], i)).tobytes() for i in reversed(ids)][::-1]
        assert first == second, corruption


def test_different_seeds_differ_exactly_for_the_random_corruptions():
    image = photo("astronaut", max_side=96)
    for corruption in ALL:
        a = np.asarray(Corruptor(corruption, 5, seed=0, sample_ids=[0])(image, 0))
        b = np.asarray(Corruptor(corruption, 5, seed=1, sample_ids=[0])(image, 0))
        assert (a.tobytes() != b.tobytes()) == (corruption in RANDOM), corruption


@pytest.mark.slow  # a second interpreter compiles glass_blur's numba kernel again (~5-10 s)
def test_same_seed_same_bytes_in_a_fresh_process():
    """Numba's and skimage's RNGs live outside numpy's global state: check a second interpreter agrees."""
    code = ("import hashlib, numpy as np; from harness.data.digits import digits_arrays; "
            "from harness.robustness.corruptions import corrupt_array, sample_seed; "
            "images = digits_arrays()['test'][0]; h = hashlib.sha256(); "
            "[h.update(corrupt_array(images[i], c, 4, sample_seed(7, c, 4, i)).tobytes()) "
            "for c in ('glass_blur', 'impulse_noise', 'frost', 'snow') for i in range(5)]; print(h.hexdigest())")
    images = digits_arrays()["test"][0]
    digest = hashlib.sha256()
    for c in ("glass_blur", "impulse_noise", "frost", "snow"):
        for i in range(5):
            digest.update(corrupt_array(images[i], c, 4, sample_seed(7, c, 4, i)).tobytes())
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == digest.hexdigest()


def test_sample_identity_not_position_decides_the_corruption():
    image = photo("coffee", max_side=64)
    a = Corruptor("gaussian_noise", 2, seed=0, sample_ids=[5, 9])
    b = Corruptor("gaussian_noise", 2, seed=0, sample_ids=[9])
    assert np.asarray(a(image, 1)).tobytes() == np.asarray(b(image, 0)).tobytes()
    assert np.asarray(a(image, 0)).tobytes() != np.asarray(a(image, 1)).tobytes()


def test_cache_serves_the_same_bytes_and_counts_hits_within_its_budget():
    images = real_images()[3:]  # two digits, 3 KB each
    cache = FillOnceCache(max_bytes=32 * 32 * 3)  # room for one
    cached = Corruptor("frost", 2, seed=0, sample_ids=[0, 1], cache=cache)
    plain = Corruptor("frost", 2, seed=0, sample_ids=[0, 1])
    for _ in range(2):  # two "models"
        for i, image in enumerate(images):
            assert np.asarray(cached(image, i)).tobytes() == np.asarray(plain(image, i)).tobytes()
    assert len(cache) == 1 and cache.hits == 1 and cache.misses == 3


def test_too_small_images_and_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="at least 32x32 pixels, got 31x40"):
        corrupt_array(np.zeros((40, 31, 3), np.uint8), "fog", 1, seed=0)
    with pytest.raises(ValueError, match="unknown corruption 'fgo'"):
        expand_names(["fgo"])
    assert expand_names(["noise", "gaussian_noise", "fog"]) == ["gaussian_noise", "shot_noise", "impulse_noise", "fog"]


# --- CE / mCE --------------------------------------------------------------------------------------------------

def frame_rows(model: str, clean: float, cells: dict[tuple[str, int], float]) -> list[dict]:
    base = {"model": model, "dataset": "d", "task": "corruption", "task_kind": "corruption", "family": "cnn",
            "n": 10, "status": "ok", "seed": 0}
    rows = [{**base, "metric": "clean_acc", "params": {"mode": "generated"}, "value": clean}]
    rows += [{**base, "metric": "corruption_acc", "params": {"corruption": c, "severity": s, "mode": "generated"},
              "value": v} for (c, s), v in cells.items()]
    return rows


def derived(task: CorruptionTask, frame: pd.DataFrame) -> dict[tuple[str, str, str | None], float]:
    return {(base["model"], m.name, m.params.get("corruption")): m.value for base, m in task.derive(frame)}


def corruption_task(**params) -> CorruptionTask:
    from harness.schema import Where, build

    return CorruptionTask(build(CorruptionTask.Params, params, Where(Path("t.yaml"), 1, "params")))


def test_ce_mce_and_relative_mce_match_a_hand_computation():
    frame = pd.DataFrame(
        frame_rows("ref", 0.9, {("fog", 1): 0.8, ("fog", 2): 0.6, ("snow", 1): 0.7, ("snow", 2): 0.5})
        + frame_rows("b", 0.95, {("fog", 1): 0.9, ("fog", 2): 0.7, ("snow", 1): 0.6, ("snow", 2): 0.4}))
    task = corruption_task(corruptions=["fog", "snow"], severities=[1, 2], reference_model="ref")
    got = derived(task, frame)
    # errors: ref clean .1, fog .2 .4, snow .3 .5;  b clean .05, fog .1 .3, snow .4 .6
    expected = {
        ("b", "corruption_error", "fog"): (0.1 + 0.3) / (0.2 + 0.4),
        ("b", "corruption_error", "snow"): (0.4 + 0.6) / (0.3 + 0.5),
        ("b", "relative_corruption_error", "fog"): ((0.1 - 0.05) + (0.3 - 0.05)) / ((0.2 - 0.1) + (0.4 - 0.1)),
        ("b", "relative_corruption_error", "snow"): ((0.4 - 0.05) + (0.6 - 0.05)) / ((0.3 - 0.1) + (0.5 - 0.1)),
    }
    expected[("b", "mce", None)] = (2 / 3 + 1.25) / 2
    expected[("b", "relative_mce", None)] = (0.75 + 1.5) / 2
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    assert got[("ref", "mce", None)] == pytest.approx(1.0) and got[("ref", "relative_mce", None)] == pytest.approx(1.0)


def test_published_alexnet_table_as_reference():
    errors = {c: ALEXNET_IMAGENET_C[c] for c in COMMON}
    # a model whose error is half AlexNet's everywhere (constant over severities) and whose clean error is 0.2
    cells = {(c, s): 1 - errors[c] / 2 for c in COMMON for s in range(1, 6)}
    task = corruption_task(reference="alexnet-imagenet-c")
    got = derived(task, pd.DataFrame(frame_rows("m", 0.8, cells)))
    assert got[("m", "mce", None)] == pytest.approx(0.5)
    relative = [(errors[c] / 2 - 0.2) / (errors[c] - ALEXNET_IMAGENET_C["clean"]) for c in COMMON]
    assert got[("m", "relative_mce", None)] == pytest.approx(sum(relative) / len(relative))
    assert got[("m", "corruption_error", "fog")] == pytest.approx(0.5)


def test_alexnet_clean_error_is_torchvisions_published_top1():
    from torchvision.models import AlexNet_Weights

    top1 = AlexNet_Weights.IMAGENET1K_V1.meta["_metrics"]["ImageNet-1K"]["acc@1"]
    assert ALEXNET_IMAGENET_C["clean"] == pytest.approx(1 - top1 / 100, abs=1e-12)


def test_ce_needs_the_reference_at_every_severity_of_the_model():
    model = ErrorProfile(0.1, {"fog": {1: 0.2, 2: 0.3}})
    ce, relative = corruption_errors(model, ErrorProfile(0.1, {"fog": {1: 0.4}}))
    assert ce == {} and relative == {}


# --- suite validation ----------------------------------------------------------------------------------------

def suite_dict(**params) -> dict:
    return {"name": "c", "version": 1, "models": [{"name": "resnet_digits", "source": "zoo"}],
            "datasets": [{"name": "digits-test", "kind": "digits", "split": "test"}],
            "tasks": [{"kind": "corruption", "params": params}]}


@pytest.mark.parametrize("params, message", [
    ({"corruptions": ["fog", "smog"]}, "corruptions: unknown corruption 'smog'"),
    ({"reference_model": "alexnet"}, "reference_model: 'alexnet' is not a model of this suite"),
    ({"mode": "canonical"}, "canonical mode needs 'root' and 'layout'"),
    ({"severities": [0, 1]}, "severities: must be among 1..5"),
    ({"reference": "alexnet-imagenet-c", "corruptions": ["spatter"]}, "has no error for 'spatter'"),
    ({"mode": "canonical", "layout": "cifar10-c", "root": "nowhere"}, "root: no such directory"),
])
def test_bad_task_params_are_one_line_errors(write_suite, params, message):
    path = write_suite(suite_dict(**params))
    with pytest.raises(SuiteError, match=message) as error:
        load_suite(str(path))
    assert str(error.value).startswith(f"{path}:") and "\n" not in str(error.value)


# --- canonical mode: miniature ImageNet-C and CIFAR-10-C in their real layouts ---------------------------------

CANONICAL_CELLS = (("gaussian_noise", 2), ("frost", 5), ("contrast", 4))


def write_digit_folder(root: Path, count: int = 30) -> list[str]:
    """An ImageNet-style val folder of embedded digits (class folders sort in digit order); returns sample ids."""
    images, labels = digits_arrays()["test"]
    ids = []
    for i in range(count):
        rel = f"n0000000{labels[i]}/ILSVRC2012_val_{i + 1:08d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).save(root / rel)
        ids.append(rel)
    return sorted(ids)


def canonical_suite(dataset: dict, **params) -> dict:
    return {"name": "canon", "version": 1, "defaults": {"batch_size": 16, "seed": 0},
            "models": [{"name": "resnet_digits", "source": "zoo"}], "datasets": [dataset],
            "tasks": [{"kind": "corruption", "params": {"corruptions": sorted({c for c, _ in CANONICAL_CELLS}),
                                                        "severities": [2, 4, 5], **params}}]}


def matrix(frame: pd.DataFrame) -> dict[tuple[str, int], tuple[float, int]]:
    rows = frame[frame["metric"] == "corruption_acc"]
    return {(p["corruption"], p["severity"]): (v, n) for p, v, n in zip(rows["params"], rows["value"], rows["n"])}


def test_canonical_imagenet_c_folders_equal_generated_corruptions(tmp_path, write_suite):
    """Write the generated corruptions to an ImageNet-C tree (lossless PNG): both modes must agree exactly."""
    val = tmp_path / "val"
    ids = write_digit_folder(val)
    class_map = tmp_path / "digits_map.txt"  # folder n0000000<d> is digit d (digit 3 has no image among the 30)
    class_map.write_text("".join(f"n0000000{d} {d}\n" for d in range(10)))
    dataset = {"name": "folder", "kind": "imagefolder", "root": str(val), "subset": {"n": 16, "seed": 1},
               "class_map": str(class_map), "num_classes": 10}
    # ImageNet-C's files are 224 crops (resize 256, centre crop 224) corrupted at that size: generated mode with
    # the same precrop must give the same numbers, with both sides seen through identity geometry
    generated = run_suite(write_suite(canonical_suite(dataset, precrop=[256, 224]), "gen.yaml"), out=tmp_path / "gen",
                          progress=False, report=False)
    subset = np.random.default_rng(1).permutation(len(ids))[:16].tolist()  # the suite's seeded subset
    from harness.robustness.corruptions import resize_crop

    for corruption in sorted({c for c, _ in CANONICAL_CELLS}):
        for severity in (2, 4, 5):
            for i in subset:  # only the subset's files exist, as for a partial download
                out = tmp_path / "imagenet-c" / corruption / str(severity) / ids[i]
                out.parent.mkdir(parents=True, exist_ok=True)
                crop = resize_crop(Image.open(val / ids[i]).convert("RGB"), 256, 224)
                Image.fromarray(library_corrupt(np.asarray(crop), corruption, severity, i)).save(out)
    suite = canonical_suite(dataset, mode="canonical", layout="imagenet-c", root=str(tmp_path / "imagenet-c"))
    canonical = run_suite(write_suite(suite, "canon.yaml"), out=tmp_path / "canon", progress=False, report=False)
    assert not generated.failed and not canonical.failed
    assert matrix(canonical.frame) == matrix(generated.frame) and len(matrix(generated.frame)) == 9
    assert {p["mode"] for p in canonical.frame["params"]} == {"canonical"}
    assert {v for v, _ in matrix(generated.frame).values()} != {1.0}  # the corruptions did bite


def library_corrupt(pixels: np.ndarray, corruption: str, severity: int, sample: int) -> np.ndarray:
    """imagecorruptions itself, not the harness's Corruptor; only the documented per-sample seed is shared
    (these corruptions draw from numpy's global RNG alone)."""
    import imagecorruptions

    from harness.robustness.corruptions import sample_seed

    saved = np.random.get_state()
    try:
        np.random.seed(sample_seed(0, corruption, severity, sample))
        return np.uint8(imagecorruptions.corrupt(pixels, corruption_name=corruption, severity=severity))
    finally:
        np.random.set_state(saved)


def write_cifar10c(root: Path, rows: list[int], shuffle_labels: bool = False) -> None:
    """CIFAR-10-C layout over the digits test split (block = 450 images per severity): <c>.npy, labels.npy."""
    images, labels = digits_arrays()["test"]
    root.mkdir(parents=True, exist_ok=True)
    for corruption in sorted({c for c, _ in CANONICAL_CELLS}):
        stack = np.concatenate([images] * 5)  # rows not asked for stay clean: never read
        for severity in (2, 4, 5):
            for i in rows:
                stack[(severity - 1) * len(images) + i] = library_corrupt(images[i], corruption, severity, i)
        np.save(root / f"{corruption}.npy", stack)
    all_labels = np.concatenate([labels] * 5)
    np.save(root / "labels.npy", np.roll(all_labels, 1) if shuffle_labels else all_labels)


def test_canonical_cifar10_c_arrays_equal_generated_corruptions(tmp_path):
    subset = np.random.default_rng(0).permutation(450)[:16].tolist()  # the suite's seeded subset
    write_cifar10c(tmp_path / "data" / "cifar10-c", subset)
    outcome = run_suite(FIXTURES / "suite_cifar10c.yaml", out=tmp_path / "out", progress=False, report=False,
                        data_root=str(tmp_path / "data"))
    assert not outcome.failed
    gen = outcome.frame[outcome.frame["task"] == "generated"]
    can = outcome.frame[outcome.frame["task"] == "canonical"]
    assert matrix(can) == matrix(gen) and len(matrix(gen)) == 9


def test_canonical_labels_in_another_order_fail_the_job_clearly(tmp_path, write_suite):
    write_cifar10c(tmp_path / "cifar10-c", [], shuffle_labels=True)
    dataset = {"name": "digits-test", "kind": "digits", "split": "test", "subset": {"n": 8, "seed": 0}}
    suite = canonical_suite(dataset, mode="canonical", layout="cifar10-c", root=str(tmp_path / "cifar10-c"),
                            corruptions=["contrast"], severities=[2])
    outcome = run_suite(write_suite(suite), out=tmp_path / "out", progress=False, report=False)
    assert len(outcome.failed) == 1 and "labels differ from the clean dataset's" in outcome.failed[0]


# --- end to end ----------------------------------------------------------------------------------------------

def test_corruption_suite_end_to_end(tmp_path):
    outcome = run_suite(FIXTURES / "suite_digits.yaml", out=tmp_path, progress=False)
    assert not outcome.failed
    frame = outcome.frame[outcome.frame["status"] == "ok"]
    spec = yaml.safe_load((FIXTURES / "suite_digits.yaml").read_text())["tasks"][0]["params"]
    for model in ("resnet_digits", "vit_digits"):
        rows = frame[frame["model"] == model]
        cells = matrix(rows)
        assert set(cells) == {(c, s) for c in spec["corruptions"] for s in spec["severities"]}
        assert all(n == 24 for _, n in cells.values())
        mean = rows[rows["metric"] == "mean_corruption_acc"]["value"].iloc[0]
        assert mean == pytest.approx(np.mean([v for v, _ in cells.values()]))
    # mCE of vit against resnet, recomputed from the stored accuracy rows
    ref, vit = (matrix(frame[frame["model"] == m]) for m in ("resnet_digits", "vit_digits"))
    ces = [sum(1 - vit[(c, s)][0] for s in spec["severities"]) / sum(1 - ref[(c, s)][0] for s in spec["severities"])
           for c in spec["corruptions"]]
    mce = frame[(frame["model"] == "vit_digits") & (frame["metric"] == "mce")]
    assert mce["value"].iloc[0] == pytest.approx(np.mean(ces)) and mce["params"].iloc[0]["reference"] == "resnet_digits"
    html = (tmp_path / "index.html").read_text()
    assert "Accuracy under corruption, mean over severities" in html and '<th title="lower is better">mce</th>' in html
    assert "<code>mode=generated</code>" in html  # a setting shared by every row is shown once, not per column
    exported = json.loads((tmp_path / "results.json").read_text())
    assert any(r["metric"] == "relative_mce" and r["derived"] for r in exported)
    assert not math.isnan(mce["value"].iloc[0])


# --- resume --------------------------------------------------------------------------------------------------

def test_an_interrupted_corruption_job_resumes_without_redoing_finished_cells(tmp_path, resnet_digits, monkeypatch):
    import torch

    from harness.data.base import SubsetSource
    from harness.data.digits import DigitsSource
    from harness.loop import run_task
    from harness.tasks.base import JobContext

    ctx = JobContext(model=resnet_digits, source=SubsetSource(DigitsSource("test"), list(range(12)), "first 12"),
                     device=torch.device("cpu"), batch_size=6, seed=0, show_progress=False)
    params = {"corruptions": ["gaussian_noise", "contrast"], "severities": [1, 3]}
    expected = [(m.name, m.params, m.value) for m in run_task(corruption_task(**params), ctx, tmp_path / "fresh")]

    evaluated: list[tuple[str, int]] = []
    original = CorruptionTask.infer

    def counting(self, ctx, pass_, index, batch):
        evaluated.append((pass_.name, index))
        if (pass_.name, index) == ("contrast/1", 1) and evaluated.count(("contrast/1", 1)) == 1:
            raise KeyboardInterrupt  # killed after clean, two gaussian_noise cells and half a contrast cell
        return original(self, ctx, pass_, index, batch)

    monkeypatch.setattr(CorruptionTask, "infer", counting)
    with pytest.raises(KeyboardInterrupt):
        run_task(corruption_task(**params), ctx, tmp_path / "resumed")
    resumed = run_task(corruption_task(**params), ctx, tmp_path / "resumed")
    cells = ["clean", "gaussian_noise/1", "gaussian_noise/3", "contrast/1"]
    first_run = [(c, b) for c in cells for b in (0, 1)]
    assert evaluated == first_run + [("contrast/1", 1), ("contrast/3", 0), ("contrast/3", 1)]
    assert [(m.name, m.params, m.value) for m in resumed] == expected


def test_canonical_imagenet_c_files_are_not_resized_twice(tmp_path, write_suite):
    """ImageNet-C files are 224 crops. A tree whose "corrupted" files are exactly the clean images' 256/224 crops
    (lossless PNG) must score exactly the clean accuracy, for a 224 model and a 160 model alike: the files get
    identity geometry and the clean reference the same resize/crop that made them."""
    from conftest import photo

    from harness.robustness.corruptions import resize_crop

    names = ["astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry"]
    val = tmp_path / "val"
    for index, name in enumerate(names):
        image = photo(name, max_side=300 + 37 * index)  # odd, non-square sizes around 300-500 px
        rel = f"n{index % 3:08d}/ILSVRC2012_val_{index + 1:08d}.png"
        (val / rel).parent.mkdir(parents=True, exist_ok=True)
        image.save(val / rel)
        for severity in (1, 2):
            out = tmp_path / "imagenet-c" / "contrast" / str(severity) / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            resize_crop(image, 256, 224).save(out)
    models = [{"name": "r224", "source": "timm", "arch": "resnet10t", "num_classes": 3},
              {"name": "v160", "source": "timm", "arch": "test_vit", "num_classes": 3}]
    suite = {"name": "c", "version": 1, "defaults": {"batch_size": 4, "seed": 0}, "models": models,
             "datasets": [{"name": "val", "kind": "imagefolder", "root": str(val)}],
             "tasks": [{"kind": "corruption", "params": {"corruptions": ["contrast"], "severities": [1, 2],
                                                         "mode": "canonical", "layout": "imagenet-c",
                                                         "root": str(tmp_path / "imagenet-c")}},
                       {"kind": "classification", "params": {"topk": [1]}}]}
    outcome = run_suite(write_suite(suite), out=tmp_path / "out", progress=False, report=False)
    assert not outcome.failed
    frame = outcome.frame
    for model in ("r224", "v160"):
        rows = frame[(frame["model"] == model) & (frame["task"] == "corruption")]
        clean = rows[rows["metric"] == "clean_acc"]["value"].iloc[0]
        cells = rows[rows["metric"] == "corruption_acc"]["value"].tolist()
        assert cells == [clean, clean], model
    records = {}
    from harness.evaluation.state import read_records

    for path in (tmp_path / "out" / "samples").glob("*.jsonl.gz"):
        state = read_records(path)
        if any("clean" in passes for passes in state.records.values()):
            for passes in state.records.values():
                assert passes["clean"] == passes["contrast/1"] == passes["contrast/2"]
                records[len(records)] = passes
    assert len(records) == 2 * len(names)
    # and the pixels the models see are identical, clean pass vs corrupted files
    import torch

    from harness.data.folder import ImageFolderSource
    from harness.models.loaders import load_model
    from harness.specs import ModelSpec
    from harness.tasks.base import JobContext

    from harness.suite import load_suite

    corruption = load_suite(str(tmp_path / "suite.yaml")).tasks[0]
    model = load_model(ModelSpec(name="v160", source="timm", arch="test_vit", num_classes=3))
    ctx = JobContext(model, ImageFolderSource(val), torch.device("cpu"), 8, 0, show_progress=False)
    clean, cell = corruption.passes(ctx)[:2]
    seen = [next(ctx.batches(p.pixel_op, source=p.source, preprocess=p.preprocess)).images for p in (clean, cell)]
    assert seen[0].shape[-2:] == (224, 224) and torch.equal(seen[0], seen[1])
