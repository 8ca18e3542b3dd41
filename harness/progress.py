"""Progress that suits where it is shown: a tqdm bar on a terminal, periodic plain lines in CI logs
(a redirected stream fills with carriage-return debris otherwise)."""
from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
PLAIN_EVERY_SECONDS = 30.0


def progress(items: Iterable[T], desc: str = "", enabled: bool = True, unit: str = "it",
             leave: bool = False) -> Iterator[T]:
    if not enabled:
        yield from items
        return
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        yield from tqdm(items, desc=desc, unit=unit, leave=leave)
        return
    total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
    started = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= PLAIN_EVERY_SECONDS:
            last = now
            of = f"/{total}" if total else ""
            print(f"{desc}: {done}{of} {unit}s, {now - started:.0f} s", file=sys.stderr, flush=True)
