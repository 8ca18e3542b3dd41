"""Loading ahead and digesting behind the forward passes (harness/pipeline.py): order, errors, bounds, and a
loop whose evaluator really runs beside the model."""
from __future__ import annotations

import threading

import pytest
import torch

from harness.pipeline import Background, Prefetch


def test_prefetch_gives_the_items_in_order_and_an_error_where_it_happened():
    def items():
        yield from range(5)
        raise OSError("image 5 is unreadable")

    got = []
    with Prefetch(items()) as loaded:
        with pytest.raises(OSError, match="image 5 is unreadable"):
            for item in loaded:
                got.append(item)
    assert got == [0, 1, 2, 3, 4]


def test_prefetch_runs_at_most_depth_ahead_and_stops_when_closed():
    produced = []

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    with Prefetch(items(), depth=2) as loaded:
        assert [next(loaded) for _ in range(3)] == [0, 1, 2]
    assert len(produced) <= 3 + 2 + 1  # consumed, queued, and the one the thread held when told to stop


def test_background_runs_calls_in_order_and_raises_the_first_error_after_finishing_the_rest():
    seen = []

    def work(i):
        if i == 2:
            raise ValueError("batch 2 has no records")
        seen.append(i)

    after = Background()
    with pytest.raises(ValueError, match="batch 2"):
        for i in range(6):
            after.submit(work, i)
        after.finish()
    assert seen == [0, 1]  # calls after a failure are dropped


def test_calls_queued_behind_a_failure_stay_dropped_after_it_was_raised():
    seen, failed = [], threading.Event()

    def work(i):
        if i == 0:
            failed.set()
            raise ValueError("batch 0 has no records")
        seen.append(i)

    with pytest.raises(ValueError, match="batch 0"):
        with Background(depth=4) as after:
            after.submit(work, 0)
            failed.wait(timeout=10)
            while True:  # the failure surfaces at a later submit; what was queued meanwhile must not run
                after.submit(work, 1)
    assert seen == []


def test_leaving_the_block_on_an_error_still_finishes_what_was_submitted():
    seen = []
    with pytest.raises(KeyboardInterrupt):
        with Background(depth=4) as after:
            for i in range(3):
                after.submit(seen.append, i)
            raise KeyboardInterrupt  # e.g. Ctrl-C during the next forward pass
    assert seen == [0, 1, 2]


def test_the_evaluator_digests_a_batch_while_the_model_runs_the_next(tmp_path):
    """Batch 0's digest waits for batch 1's forward pass to start: with a serial loop this never returns."""
    from harness.data.digits import DigitsSource
    from harness.data.base import SubsetSource
    from harness.loop import run_task
    from harness.models.loaders import load_model
    from harness.specs import ModelSpec
    from harness.tasks.base import JobContext
    from harness.tasks.classification import ClassificationTask

    second_forward = threading.Event()
    digest_threads = set()
    model = load_model(ModelSpec(name="resnet_digits", source="zoo"))
    forward = model.module.forward
    calls = []

    def watched_forward(images):
        calls.append(threading.current_thread().name)
        if len(calls) == 2:
            second_forward.set()
        return forward(images)

    model.module.forward = watched_forward
    task = ClassificationTask(ClassificationTask.Params())
    make_evaluator = task.evaluators

    def watched_evaluators(meta):
        evaluator = make_evaluator(meta)
        process = evaluator.process

        def watched_process(batch, outputs):
            digest_threads.add(threading.current_thread().name)
            if not second_forward.is_set():
                assert second_forward.wait(timeout=30), "the next forward pass never started: no overlap"
            return process(batch, outputs)

        evaluator.process = watched_process
        return evaluator

    task.evaluators = watched_evaluators
    source = SubsetSource(DigitsSource("test"), range(24), "first 24")
    ctx = JobContext(model=model, source=source, device=torch.device("cpu"), batch_size=8, seed=0,
                     show_progress=False)
    metrics = run_task(task, ctx)
    assert next(m for m in metrics if m.name == "top1").n == 24
    assert set(calls) == {threading.current_thread().name} and digest_threads == {"digest batches"}


def test_the_digest_thread_runs_torch_on_one_thread_and_leaves_the_callers_default():
    before = torch.get_num_threads()
    inside = []
    with Background() as after:
        after.submit(lambda: inside.append(torch.get_num_threads()))
    fresh = []
    thread = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert inside == [1]
    assert torch.get_num_threads() == before and fresh == [before]  # a later thread gets the default again
