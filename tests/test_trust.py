"""Numbers users can trust: cache keys follow content, subsets are seeded draws, partial state belongs to one
key, unreliable robustness is shown as such, batches pin memory for real."""
from __future__ import annotations

import json
import warnings

import pandas as pd
import torch
import yaml
from PIL import Image

from harness.data.loader import Batch
from harness.run import run_suite
from tests.conftest import InferSpy, zoo_suite


def _digit_folder(root, per_class: int = 4):
    """A class-sorted image folder of embedded digits: folder d holds `per_class` images of digit d."""
    from harness.data.digits import digits_arrays

    images, labels = digits_arrays()["test"]
    for digit in range(10):
        folder = root / f"class_{digit}"
        folder.mkdir(parents=True, exist_ok=True)
        for k, index in enumerate([i for i in range(len(labels)) if labels[i] == digit][:per_class]):
            Image.fromarray(images[index]).save(folder / f"{k:03d}.png")
    return root


def _folder_suite(tmp_path, root, models=("resnet_digits",), class_map=None) -> str:
    suite = zoo_suite(models)
    suite["datasets"] = [{"name": "folder", "kind": "imagefolder", "root": str(root), "num_classes": 10,
                          **({"class_map": str(class_map)} if class_map else {})}]
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return str(path)


def test_a_changed_image_or_class_map_is_never_served_from_the_cache(tmp_path):
    root = _digit_folder(tmp_path / "folder")
    class_map = tmp_path / "map.txt"
    class_map.write_text("".join(f"class_{d} {d}\n" for d in range(10)))
    suite = _folder_suite(tmp_path, root, class_map=class_map)
    first = run_suite(suite, out=tmp_path / "out", progress=False, report=False)
    assert (first.ran, run_suite(suite, out=tmp_path / "out", progress=False, report=False).cached) == (1, 1)
    Image.open(root / "class_3" / "001.png").rotate(90).save(root / "class_3" / "001.png")  # same path, new pixels
    assert run_suite(suite, out=tmp_path / "out", progress=False, report=False).ran == 1
    class_map.write_text("".join(f"class_{d} {(d + 1) % 10}\n" for d in range(10)))  # same path, new content
    relabelled = run_suite(suite, out=tmp_path / "out", progress=False, report=False)
    assert relabelled.ran == 1 and relabelled.frame.set_index("metric").loc["top1", "value"] < 0.5


def test_limit_is_a_seeded_draw_across_classes_identical_for_every_model(tmp_path):
    root = _digit_folder(tmp_path / "folder")
    outcome = run_suite(_folder_suite(tmp_path, root, models=("resnet_digits", "vit_digits")), out=tmp_path / "out",
                        limit=10, progress=False, report=False)
    provenance = [json.loads(p) for p in outcome.frame.drop_duplicates("job_key")["provenance"]]
    assert len({p["sample_ids_sha256"] for p in provenance}) == 1 and provenance[0]["n_samples"] == 10
    from harness.evaluation.state import read_records

    records = read_records(next((tmp_path / "out" / "samples").glob("*.jsonl.gz")))
    classes = {sample_id.split("/")[0] for sample_id in records.records}
    assert len(classes) >= 5  # "the first 10" of this class-sorted folder would be classes 0, 1 and 2 only


def test_partial_state_is_dropped_when_unreadable_and_discarded_by_rerun(tmp_path, write_suite, monkeypatch):
    from harness.evaluation.state import read_records

    suite = write_suite(zoo_suite(["resnet_digits"]))
    spy = InferSpy(monkeypatch, stop_at=2)
    calls = spy.calls
    assert run_suite(suite, out=tmp_path / "out", batch_size=50, limit=150, progress=False).interrupted
    saved = sorted((tmp_path / "out" / "partial").rglob("batch_*.json"))
    assert [p.name for p in saved] == ["batch_000000.json", "batch_000001.json"]
    saved[0].write_text("{not json")  # an unreadable piece: named, dropped, recomputed
    calls.clear()
    spy.stop_at = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = run_suite(suite, out=tmp_path / "out", batch_size=50, limit=150, progress=False)
    assert sorted(calls) == [0, 2] and any("batch_000000.json" in str(w.message) for w in caught)
    assert not resumed.failed
    # a saved batch edited by hand (same samples, falsified outcomes) must not leak into a --rerun
    key = resumed.frame["job_key"].iloc[0]
    first_ids = list(read_records(tmp_path / "out" / "samples" / f"{key}.jsonl.gz").records)[:50]
    forged = {sample_id: {"main": {"label": 0, "topk": [1, 2, 3, 4, 5], "correct": False}} for sample_id in first_ids}
    fake = tmp_path / "out" / "partial" / key / "p000_main" / "batch_000000.json"
    fake.parent.mkdir(parents=True, exist_ok=True)
    fake.write_text(json.dumps({"ids": first_ids, "state": {"records": forged, "sums": {}}}))
    calls.clear()
    rerun = run_suite(suite, out=tmp_path / "out", batch_size=50, limit=150, progress=False, rerun=True)
    assert sorted(calls) == [0, 1, 2]
    top1 = lambda outcome: outcome.frame.set_index("metric").loc["top1", "value"]  # noqa: E731
    assert top1(rerun) == top1(resumed) > 0.9


def test_unreliable_robust_accuracy_is_footnoted_and_left_out_of_best():
    from harness.report.render import render_html
    from harness.report.tables import family_summary, ok_rows

    rows = []
    for model, family, robust, reliable in (("honest", "cnn", 0.40, 1.0), ("masked", "cnn", 0.90, 0.0)):
        base = {"job_key": model, "model": model, "family": family, "arch": model, "dataset": "d", "task": "pgd",
                "task_kind": "pgd", "status": "ok", "error": None, "provenance": "{}", "n": 100,
                "ci_low": None, "ci_high": None}
        rows += [{**base, "metric": "robust_acc", "params": {"norm": "Linf", "eps": 8 / 255}, "value": robust},
                 {**base, "metric": "clean_acc", "params": {}, "value": 0.99},
                 {**base, "metric": "robust_reliable", "params": {}, "value": reliable},
                 {**base, "metric": "flag_masked_gradients", "params": {}, "value": 1 - reliable}]
    frame = pd.DataFrame(rows)
    _, summary = family_summary(ok_rows(frame))
    robust = next(r for r in summary if r["column"].startswith("robust_acc"))
    assert robust["cnn"]["best"] == 0.40 and robust["cnn"]["excluded"] == 1
    html = render_html(frame, "t")
    assert "unreliable" in html and "masked gradients" in html and "†" in html


def test_batches_pin_their_tensors_for_asynchronous_copies(monkeypatch):
    pinned = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: pinned.append(self.shape) or self)
    from torch.utils.data._utils.pin_memory import pin_memory

    batch = Batch(torch.zeros(2, 3, 4, 4), torch.tensor([1, 2]), torch.tensor([0, 1]), ["a", "b"], [(4, 4)] * 2)
    out = pin_memory(batch)  # what DataLoader(pin_memory=True) does with each batch
    assert isinstance(out, Batch) and pinned == [torch.Size([2, 3, 4, 4]), torch.Size([2])]
