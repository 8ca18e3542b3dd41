"""What published output may say about the machine that built it: no absolute path, no home folder.

Stores keep the absolute paths a run used (its suite file, ``--out``, ``--data-root``, local weights, error
messages naming files); a page, export or figure made from them names those places instead

- under the reports folder being published: relative to the working folder, else from the reports
  folder's own name (``reports/robustness/…``);
- under the working folder or the harness checkout (the repository): relative to it (``suites/x.yaml``);
- under the home folder: ``~/…``;
- anywhere else: ``…/`` and the last part of the path (``…/resnet50.safetensors``).

``PathScrubber.text`` rewrites any text; ``frame`` a results frame (every text column, the provenance JSON
included); ``known`` only the known folders, which is safe on markup and is the last pass over every file
written.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

# one path component: no whitespace, quotes, markup, separators of lists or key: value text; a JSON \uXXXX
# escape counts as a character (provenance is stored as ASCII JSON)
_PART = r"(?:\\u[0-9a-fA-F]{4}|[^\s/\\\"'<>|;,()\[\]{}:*?`])+"
# an absolute path: "/" that does not continue a word, a relative path or a URL ("a/b", "./x", "~/x", "x://")
_ABSOLUTE = re.compile(rf"(?<![\w.~/\\-])(?:/{_PART}){{2,}}/?")
_FILE_URL = re.compile(r"\bfile://(?=/)")  # file:///x/y: the path is scrubbed like any other
_HARNESS_CHECKOUT = Path(__file__).resolve().parents[2]


def _forms(path: Path) -> list[str]:
    """The spellings of one folder that may appear in text: as given, absolute, resolved (a symlinked /tmp)."""
    forms = {str(path), str(path.absolute()), str(path.resolve())}
    return [f.rstrip("/") for f in forms if f.startswith("/") and f.rstrip("/")]


class PathScrubber:
    def __init__(self, reports: Iterable[Path] = (), outputs: Iterable[Path] = ()) -> None:
        cwd = Path.cwd().resolve()
        home = Path(os.path.expanduser("~")).resolve()
        labels: dict[str, str] = {}  # absolute folder -> how output names it ("" = relative)

        def add(folder: Path, label: str) -> None:
            for form in _forms(folder):
                if len(Path(form).parts) > 1:  # never "/" itself
                    labels.setdefault(form, label)

        for folder in [*reports, *outputs]:
            folder = Path(folder)
            try:
                label = folder.resolve().relative_to(cwd).as_posix() if cwd != home and len(cwd.parts) > 1 else ""
            except ValueError:
                label = ""
            add(folder, label if label and label != "." else folder.resolve().name)
        for repository in (cwd, _HARNESS_CHECKOUT):  # not the home folder itself, nor a folder above it
            if repository != home and repository not in home.parents:
                add(repository, "")
        if len(home.parts) > 1:
            add(home, "~")
        self.labels = labels
        # longest first, so the most specific folder names a path; JSON-escaped spellings too (non-ASCII names)
        spellings = {}
        for form, label in labels.items():
            spellings[form] = label
            spellings.setdefault(json.dumps(form)[1:-1], label)
        self._known = re.compile(
            r"(?<![\w.~/\\-])(" + "|".join(re.escape(s) for s in sorted(spellings, key=len, reverse=True))
            + r")(?:(/)|(?=[^\w.-]|$))") if spellings else None
        self._spellings = spellings
        self._cache: dict[str, str] = {}

    # --- text -------------------------------------------------------------------------------------------
    def known(self, text: str) -> str:
        """``text`` with the known folders (reports, outputs, repository, home) named as published."""
        if self._known is None or "/" not in text:
            return text

        def name(match: re.Match) -> str:
            label, slash = self._spellings[match.group(1)], match.group(2) or ""
            if label:
                return label + slash
            return "" if slash else "."  # repository-relative: "<repo>/suites/x.yaml" -> "suites/x.yaml"

        return self._known.sub(name, text)

    def text(self, text: str) -> str:
        """``text`` naming no absolute path: known folders as ``known``, any other path as ``…/<last part>``."""
        if "/" not in text:
            return text
        cached = self._cache.get(text)
        if cached is None:
            cached = _ABSOLUTE.sub(_last_part, self.known(_FILE_URL.sub("", text)))
            if len(self._cache) < 200_000:
                self._cache[text] = cached
        return cached

    def path(self, path: Path | str) -> str:
        """A folder or file as published (a relative one stays as it is)."""
        text = Path(path).as_posix()
        return self.text(text) if text.startswith("/") else text

    def value(self, value: Any) -> Any:
        """Strings anywhere in a JSON-like value (dicts, lists) scrubbed; other values as they are."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.value(v) for v in value)
        return value

    # --- frames -----------------------------------------------------------------------------------------
    def frame(self, frame: pd.DataFrame, drop: tuple[str, ...] = ()) -> pd.DataFrame:
        """A copy of a results frame whose text (every text column; dict params) names no absolute path;
        ``drop``: columns that are not published at all (emptied)."""
        if frame.empty:
            return frame
        out = frame.copy()
        for column in out.columns:
            if column in drop:
                out[column] = None
                continue
            values = out[column]
            if (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
                    or pd.api.types.is_datetime64_any_dtype(values)):
                continue  # text is object or (pandas 3) str
            if column == "params":
                out[column] = [self.value(v) if isinstance(v, dict) and _has_slash(v) else v for v in values]
                continue
            distinct = {v for v in values.dropna().unique() if isinstance(v, str) and "/" in v}
            if distinct:
                mapping = {v: self.text(v) for v in distinct}
                out[column] = [mapping.get(v, v) if isinstance(v, str) else v for v in values.tolist()]
        return out


def _has_slash(value: Any) -> bool:
    if isinstance(value, str):
        return "/" in value
    if isinstance(value, dict):
        return any(_has_slash(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_slash(v) for v in value)
    return False


def _last_part(match: re.Match) -> str:
    return "…/" + match.group(0).rstrip("/").rsplit("/", 1)[-1]
