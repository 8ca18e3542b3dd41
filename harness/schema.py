"""Turning YAML mappings into typed dataclasses, with errors that name the file, line and field.

A small hand-rolled validator: the suite schema is a handful of dataclasses and the errors must be
one readable line, which generic validators make hard.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from fractions import Fraction
from pathlib import Path
from typing import Any, Union

import yaml


class SuiteError(ValueError):
    """A problem with a suite file; its message is one line: ``file:line: field: what is wrong``."""


class UsageError(ValueError):
    """A bad command-line value; printed as one line naming the flag, exit code 2."""


class LineDict(dict):
    """A dict that remembers the line (1-based) each key and the mapping itself started on."""

    line: int = 0
    key_lines: dict[str, int]


class LineList(list):
    line: int = 0
    item_lines: list[int]


class DuplicateKeyError(Exception):
    """A mapping names one key twice (YAML would silently keep the last)."""

    def __init__(self, key: Any, line: int) -> None:
        super().__init__(key, line)
        self.key, self.line = key, line


class _LineLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = getattr(key_node, "value", None)
            if key in seen:
                raise DuplicateKeyError(key, key_node.start_mark.line + 1)
            seen.add(key)
        mapping = LineDict(super().construct_mapping(node, deep=True))
        mapping.line = node.start_mark.line + 1
        mapping.key_lines = {k.value: k.start_mark.line + 1 for k, _ in node.value if hasattr(k, "value")}
        return mapping

    def construct_sequence(self, node, deep=False):  # type: ignore[override]
        seq = LineList(super().construct_sequence(node, deep=True))
        seq.line = node.start_mark.line + 1
        seq.item_lines = [item.start_mark.line + 1 for item in node.value]
        return seq


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _LineLoader.construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _LineLoader.construct_sequence)


def load_yaml(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.load(handle, Loader=_LineLoader)
    except DuplicateKeyError as exc:
        raise SuiteError(f"{path}:{exc.line}: {exc.key}: duplicate key (each key may appear once per mapping)") from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise SuiteError(f"{path}:{line}: invalid YAML: {exc.problem}") from None
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{path}: not a UTF-8 text file (byte {exc.start}: {exc.reason}); save the suite as UTF-8") from None
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise SuiteError(f"{path}: cannot read suite: {exc.strerror}") from None


@dataclasses.dataclass(frozen=True)
class Where:
    """A position in a suite file, used to build error messages."""

    file: Path
    line: int
    field: str
    key_lines: tuple[tuple[str, int], ...] = ()  # the lines of the mapping's keys, for ``at``

    def child(self, key: str | int, container: Any) -> "Where":
        line = self.line
        if isinstance(key, str) and isinstance(container, LineDict):
            line = container.key_lines.get(key, container.line)
        elif isinstance(key, int) and isinstance(container, LineList) and key < len(container.item_lines):
            line = container.item_lines[key]
        name = f"{self.field}[{key}]" if isinstance(key, int) else (f"{self.field}.{key}" if self.field else key)
        return Where(self.file, line, name)

    def within(self, mapping: Any) -> "Where":
        """This position, knowing the lines of ``mapping``'s keys (so ``at`` can point at each)."""
        return dataclasses.replace(self, key_lines=tuple(getattr(mapping, "key_lines", {}).items()))

    def at(self, key: str) -> "Where":
        """The position of ``key`` inside the mapping this Where was built for (see ``build``)."""
        line = dict(self.key_lines).get(key, self.line)
        return Where(self.file, line, f"{self.field}.{key}" if self.field else key)

    def error(self, message: str) -> SuiteError:
        location = f"{self.file}:{self.line}" if self.line else str(self.file)
        return SuiteError(f"{location}: {self.field or '<suite>'}: {message}")


def parse_number(value: Any, where: Where) -> float:
    """Accept ints, floats and fractions written as strings, e.g. ``8/255`` for pixel-space eps."""
    if isinstance(value, bool):
        raise where.error(f"expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(Fraction(value.replace(" ", "")))
        except (ValueError, ZeroDivisionError):
            pass
    raise where.error(f"expected a number such as 0.03 or 8/255, got {value!r}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def convert(value: Any, tp: Any, where: Where) -> Any:
    """Check and convert ``value`` to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # X | None: the inner type's own error is the precise one
            return convert(value, options[0], where)
        for option in options:
            try:
                return convert(value, option, where)
            except SuiteError:
                continue
        raise where.error(f"expected {' or '.join(_type_name(a) for a in options)}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise where.error(f"must be one of {', '.join(map(str, args))}; got {value!r}")
        return value
    if origin in (list, tuple):
        items = value if isinstance(value, list) else [value]  # a scalar is a list of one
        return [convert(item, args[0] if args else Any, where.child(i, value)) for i, item in enumerate(items)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise where.error(f"expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if tp is float:
        return parse_number(value, where)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise where.error(f"expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise where.error(f"expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise where.error(f"expected a string, got {value!r}")
        return str(value)
    if tp is Path:
        if not isinstance(value, str):
            raise where.error(f"expected a path, got {value!r}")
        return Path(value)
    raise TypeError(f"schema type {tp!r} is not supported")


def build(cls: type, mapping: Any, where: Where) -> Any:
    """Build dataclass ``cls`` from a mapping: unknown keys, missing keys and wrong types are errors."""
    if mapping is None:
        mapping = LineDict()
    if not isinstance(mapping, dict):
        raise where.error(f"expected a mapping, got {mapping!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in mapping if k not in fields]
    if unknown:
        key = unknown[0]
        raise where.child(str(key), mapping).error(f"unknown key (allowed: {', '.join(fields)})")
    kwargs = {}
    for name, spec in fields.items():
        if name in mapping:
            kwargs[name] = convert(mapping[name], hints[name], where.child(name, mapping))
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise where.error(f"missing required key {name!r}")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        check(where.within(mapping))
    return obj
