"""Name -> factory registries with a decorator and fnmatch listing (in the manner of timm's registry)."""
from __future__ import annotations

import difflib
import fnmatch
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised when a name is not registered; the message suggests close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Generic[T]):
    """A flat dict of name -> entry, filled by the ``register`` decorator."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        def decorate(entry: T) -> T:
            key = name or getattr(entry, "name", None) or getattr(entry, "__name__")
            if key in self._entries and self._entries[key] is not entry:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = entry
            return entry

        return decorate

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._entries, n=3)
            if not self._entries:  # never show an empty list as the choices
                raise UnknownNameError(f"unknown {self.kind} {name!r}: no {self.kind} is registered") from None
            hint = f" (did you mean {', '.join(close)}?)" if close else f" (known: {', '.join(sorted(self._entries))})"
            raise UnknownNameError(f"unknown {self.kind} {name!r}{hint}") from None

    def list(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._entries.items())


MODEL_SOURCES: Registry[Callable[..., Any]] = Registry("model source")
ZOO_MODELS: Registry[Any] = Registry("zoo model")
DATASETS: Registry[Callable[..., Any]] = Registry("dataset kind")
TASKS: Registry[Any] = Registry("task")
# evaluators a suite can attach to a task (``evaluators:``): classes with a ``Params`` dataclass and
# ``attach(params, meta) -> Evaluator`` (harness/evaluation/evaluator.py)
EVALUATORS: Registry[Any] = Registry("evaluator")
# task kind -> callable(task_rows, all_rows) -> list[(title, safe svg/html)]: task-specific report figures
REPORT_SECTIONS: Registry[Callable[..., Any]] = Registry("report section")
# canonical output kind -> callable(ModelSpec) -> LoadedModel: the ``source: hf`` adapters (transformers)
HF_ADAPTERS: Registry[Callable[..., Any]] = Registry("hf output")
