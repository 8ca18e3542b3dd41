"""Host work beside the forward passes: load the next batch and digest the last one on threads.

The evaluation loop's main thread runs only the model. ``Prefetch`` loads batches ahead of it on a thread
(decode, preprocess, collate, the host-to-device copy), and ``Background`` runs what follows a forward pass
on another (the evaluator's records: COCO results, encoded masks, confusion counts; saving the batch), each
through a bounded queue, so at most ``depth`` batches wait at either end and memory stays bounded. torch's
kernels and PIL's decoders release the GIL, so the threads overlap with the forward pass.

Where host work on threads really runs beside the model is one rule (``overlaps_forward``): on CUDA, where
the model's thread waits for the GPU with the GIL released. On a CPU the forward pass holds the cores and,
between its kernels, the GIL: measured on 2 cores, prefetching cut classification throughput to 0.80 of a
bare loop where serial loading gave 0.94, while the digest thread with records alone cost nothing
(bench_classification.py). DataLoader worker processes (``--workers``) load ahead on CPU.

The digest thread runs torch's kernels with one intra-op thread. Each thread that calls torch gets an OpenMP
team of its own; a second team of ``torch.get_num_threads()`` on the same cores oversubscribes them, and its
threads spin after every small kernel while the model's team waits: a calibration evaluator's per-batch
softmax and bin sums (about 5 ms of work in all) made a resnet_digits job 1.31x slower, and 1.05x with one
thread (bench_calibration.py). torch's default for a thread's first kernel follows the last ``set_num_threads``,
so a thread that first calls torch while the digest thread runs (the loading thread, on CUDA) also gets one.

Order and results are the serial loop's: one thread consumes each iterator, the background work runs in
submission order. An error on either thread is raised in the caller at its next step (``next``, ``submit``
or leaving the ``with`` block); leaving the block waits for the work already submitted, so every batch whose
forward pass finished is still digested and saved when a later one fails or the user presses Ctrl-C.
"""
from __future__ import annotations

import contextlib
import queue
import threading
from typing import Any, Callable, Generic, Iterable, Iterator, Protocol, TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")
_END = object()


class _Device(Protocol):
    type: str


def overlaps_forward(device: _Device) -> bool:
    """Whether loading ahead and heavy digesting (COCO's per-image matching) on threads overlap the forward
    passes on ``device`` (a torch.device) instead of competing with them: on CUDA only (see the module note)."""
    return device.type == "cuda"


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetch(Generic[T]):
    """Iterate ``items`` on a thread, up to ``depth`` items ahead of the caller."""

    def __init__(self, items: Iterable[T], depth: int = 2, name: str = "prefetch") -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(iter(items),), name=name, daemon=True)
        self._thread.start()

    def _fill(self, items: Iterator[T]) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            self._put(_Failure(error))
            return
        self._put(_END)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        item = self._queue.get()
        if item is _END:
            self._queue.put(_END)  # stay exhausted
            raise StopIteration
        if isinstance(item, _Failure):
            self._queue.put(item)
            raise item.error
        return item

    def close(self) -> None:
        """Stop loading (the thread ends at its next item) and wait for it."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> "Prefetch[T]":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Background:
    """Run submitted calls in order on one thread (torch kernels on one intra-op thread), at most ``depth``
    waiting."""

    def __init__(self, depth: int = 2, name: str = "background") -> None:
        # set_num_threads also changes the default that a thread's first kernel adopts: the caller's team is
        # made now, at its own size, and the default is restored in ``finish``
        self._caller_threads = torch.get_num_threads()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None  # the first failure; it stays, so later calls stay dropped
        self._raised = False
        self._thread = threading.Thread(target=self._drain, name=name, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        torch.set_num_threads(1)
        while (job := self._queue.get()) is not _END:
            if self._error is None:  # after a failure, later calls are dropped (their inputs may depend on it)
                call, args = job
                try:
                    call(*args)
                except BaseException as error:
                    self._error = error

    def submit(self, call: Callable[..., Any], *args: Any) -> None:
        self._raise_pending()
        self._queue.put((call, args))

    def finish(self) -> None:
        """Wait for every submitted call; raise the first one's error, if any failed."""
        if self._thread.is_alive():
            self._queue.put(_END)
            self._thread.join()
            torch.set_num_threads(self._caller_threads)
        self._raise_pending()

    def _raise_pending(self) -> None:
        if self._error is not None and not self._raised:
            self._raised = True
            raise self._error

    def __enter__(self) -> "Background":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.finish()
            return
        try:  # the caller is already failing: finish what was submitted, and let the caller's error win
            self.finish()
        except BaseException:
            pass


def run_overlapped(items: Iterable[T], forward: Callable[[T], R], digest: Callable[[T, R], None],
                   prefetch: bool = True, depth: int = 2) -> None:
    """``digest(item, forward(item))`` for every item in order: ``forward`` on the caller's thread,
    ``digest`` on the background thread, and with ``prefetch`` the items produced on the loading thread."""
    with contextlib.ExitStack() as stack:
        loaded = stack.enter_context(Prefetch(items, depth, name="load batches")) if prefetch else items
        after = stack.enter_context(Background(depth, name="digest batches"))
        for item in loaded:
            after.submit(digest, item, forward(item))
