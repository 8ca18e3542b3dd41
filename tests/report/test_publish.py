"""The published site read back: its numbers equal the store's cell by cell, every page parses strictly and
links only inside the site, exports round-trip, caveats and ties follow their stated rules, the CLI works."""
from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import html5lib
import pandas as pd
import pytest

from harness.cli import main
from harness.report.datatable import format_value
from harness.report.site import publish_site
from harness.report.tables import headline, ok_rows
from harness.run import run_suite
from harness.runner import with_derived_metrics
from harness.store import ResultStore
from publish_fixtures import write_reports

NS = {"h": "http://www.w3.org/1999/xhtml"}
FLAG_WORDS = {w: pair for pair in (("passed", "raised"), ("unreliable", "reliable")) for w in pair}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    suites = write_reports(root, models=6, suites=2, runs=3)
    real = run_suite("classification", limit=30, out=root / "classification", progress=False, log_samples=False)
    assert not real.failed
    site = tmp_path_factory.mktemp("site")
    summary = publish_site(root, site)
    return root, site, suites, summary


def parse(path: Path):
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=True).parse(path.read_text(encoding="utf-8"))


def text_of(element) -> str:
    return "".join(element.itertext()).strip()


def html_tables(page: Path) -> dict[tuple[str, str], dict[tuple[str, str], dict]]:
    """(task, dataset) -> (model, column) -> the cell's attributes and text, read from a suite page."""
    out = {}
    for section in parse(page).iterfind(".//h:section", NS):
        if "table-section" not in section.get("class", "") or section.get("data-task") is None:
            continue
        table = section.find(".//h:table", NS)
        cells = {}
        for row in table.iterfind(".//h:tbody/h:tr", NS):
            for td in row.iterfind("h:td", NS):
                cells[(row.get("data-model"), td.get("data-col"))] = {**td.attrib, "text": text_of(td)}
        out[(section.get("data-task"), section.get("data-dataset"))] = cells
    return out


def expected_rows(folder: Path, tasks) -> pd.DataFrame:
    """The store's latest numbers (one row per job key) with the suite's derived metrics, as the runner has them."""
    store = ResultStore(folder / "results.sqlite")
    frame = store.frame()
    store.close()
    return headline(ok_rows(with_derived_metrics(frame, tasks)))


def _float(text: str | None) -> float | None:
    return None if text in (None, "") else float(text)


def test_published_numbers_equal_the_store_cell_by_cell(published):
    root, site, suites, _ = published
    from harness.suite import load_suite

    sources = [(s.folder, s.name, s.tasks) for s in suites]
    sources.append((root / "classification", "classification", load_suite("classification").tasks))
    for folder, slug, tasks in sources:
        tables = html_tables(site / "suites" / slug / "index.html")
        rows = expected_rows(folder, tasks)
        assert len(rows) >= 8
        for r in rows.itertuples():
            cell = tables[(r.task, r.dataset)][(r.model, r.column)]
            assert float(cell["data-value"]) == r.value, (slug, r.model, r.column)
            assert cell["text"].startswith(format_value(r.value)), cell["text"]
            if pd.notna(r.ci_low):
                assert (float(cell["data-ci-low"]), float(cell["data-ci-high"])) == (r.ci_low, r.ci_high)
                assert f"[{format_value(r.ci_low)}, {format_value(r.ci_high)}]" in cell["text"]
            assert int(cell["data-n"]) == r.n
        shown = {(t, d, m, c) for (t, d), cells in tables.items() for (m, c), cell in cells.items()
                 if cell.get("data-value") and c not in ("model", "family", "arch", "size", "n")}
        assert shown == {(r.task, r.dataset, r.model, r.column) for r in rows.itertuples()}


def test_every_page_parses_strictly_and_links_stay_inside_the_site(published):
    _, site, _, summary = published
    pages = sorted(site.rglob("*.html"))
    assert set(pages) == set(summary.pages)
    kinds = {p.relative_to(site).parts[0] if len(p.relative_to(site).parts) > 1 else "index" for p in pages}
    assert kinds == {"index", "suites", "models"}
    for page in pages:
        parse(page)  # raises on any parse error
        text = page.read_text(encoding="utf-8")
        for link in re.findall(r'\s(?:src|href|xlink:href)="([^"]*)"', text):
            parts = urlsplit(link)
            assert not parts.scheme and not parts.netloc, f"{page}: external link {link}"
            if parts.path:  # a relative file link must point at a file of the site
                assert (page.parent / unquote(parts.path)).resolve().is_file(), f"{page}: broken link {link}"
            if parts.fragment and not parts.path:
                assert f'id="{parts.fragment}"' in text, f"{page}: no anchor {link}"
        assert "<script src=" in text and "cdn" not in text.lower()


def _numbers(text: str) -> list[float]:
    return [float(x.replace(",", "")) for x in re.findall(r"-?\d[\d,]*\.\d+|-?\d+", text)]


def _markdown_rows(text: str) -> list[list[str]]:
    lines = [l for l in text.splitlines() if l.startswith("| ")]

    def cell(text: str) -> str:  # emphasis off, then Markdown's backslash escapes undone
        text = text.strip()
        bold = re.fullmatch(r"\*\*(.*)\*\*", text)
        return re.sub(r"\\(.)", r"\1", bold.group(1) if bold else text).strip()

    return [[cell(c) for c in re.split(r"(?<!\\)\|", l)[1:-1]] for l in lines[1:]]


def _latex_rows(text: str) -> list[list[str]]:
    body = text.split(r"\midrule")[1].split(r"\bottomrule")[0]
    rows = [l.rstrip().removesuffix(r"\\").strip() for l in body.strip().splitlines()]
    return [[re.sub(r"\\textbf\{(.*)\}", r"\1", c.strip()).replace(r"\_", "_").replace("--", "–").replace("-{}", "-")
             for c in r.split(" & ")]
            for r in rows]


def test_exports_round_trip_to_the_same_values(published):
    _, site, _, summary = published
    checked = 0
    for path in sorted((site / "data").glob("*.json")):
        if path.name.endswith("--history.json"):
            continue
        table = json.loads(path.read_text(encoding="utf-8"))
        csv_rows = list(csv.DictReader(io.StringIO(path.with_suffix(".csv").read_text(encoding="utf-8"))))
        md_rows = _markdown_rows(path.with_suffix(".md").read_text(encoding="utf-8"))
        tex_rows = _latex_rows(path.with_suffix(".tex").read_text(encoding="utf-8"))
        assert len(csv_rows) == len(md_rows) == len(tex_rows) == len(table["rows"])
        for i, row in enumerate(table["rows"]):
            for j, column in enumerate(table["columns"]):
                value = row[column["key"]]
                number = value.get("value") if isinstance(value, dict) else value
                assert csv_rows[i][column["key"]] == ("" if number is None else repr(number) if isinstance(number, float)
                                                      else str(number))
                if isinstance(value, dict) and value["ci_low"] is not None:
                    assert float(csv_rows[i][f"{column['key']} ci_low"]) == value["ci_low"]
                    assert float(csv_rows[i][f"{column['key']} ci_high"]) == value["ci_high"]
                for shown in (md_rows[i][j], tex_rows[i][j]):
                    if isinstance(value, dict) and number is not None and shown in FLAG_WORDS:
                        assert shown == FLAG_WORDS[shown][int(number > 0)]  # a flag, as a word
                    elif isinstance(value, dict) and number is not None:
                        numbers = _numbers(shown)
                        assert math.isclose(numbers[0], number, abs_tol=5e-5 if abs(number) < 10 else 5e-3), shown
                        if isinstance(value, dict) and value["ci_low"] is not None:
                            assert numbers[1:3] == pytest.approx([value["ci_low"], value["ci_high"]], abs=5e-5)
                    elif number not in (None, "") and not column["numeric"]:  # text, perhaps shortened, + caveat marks
                        base = re.sub(r"(\$\\d?dagger\$|\\S\{\}|[*‡†§])+$", "", shown)
                        assert base and str(number).startswith(base), (shown, number)
                checked += 1
    assert checked > 500 and summary.tables > 10


def test_caveats_are_footnoted_and_flags_read_as_words(published):
    _, site, suites, _ = published
    suite = suites[0]
    flagged, random_init, failing, partial = suite.models[-1], suite.models[1], suite.models[2], suite.models[0]
    tables = html_tables(site / "suites" / suite.name / "index.html")
    pgd = tables[("pgd-linf", "digits-test")]
    robust = [c for (m, c) in pgd if m == flagged and c.startswith("robust_acc")]
    assert robust and all("†" in pgd[(flagged, c)]["text"] and "★" not in pgd[(flagged, c)]["text"] for c in robust)
    assert "‡" in pgd[(random_init, "model")]["text"]
    classification = tables[("classification", "digits-test")]
    assert classification[(failing, "top1")]["text"] == "failed"
    assert classification[(partial, "top5")]["text"] == "–*"
    assert "§" in text_of(parse(site / "suites" / suite.name / "index.html").find(".//h:th[@data-col='mce']", NS))
    page = (site / "suites" / suite.name / "index.html").read_text(encoding="utf-8")
    for phrase in ("flagged unreliable by a sanity check", "random-init weights", "derived across models", "partial:"):
        assert phrase in page
    model_page = parse(site / "models" / f"{flagged}.html")
    words = {text_of(td) for tr in model_page.iterfind(".//h:tbody/h:tr", NS)
             for td in tr.iterfind("h:td[@data-col='value']", NS)
             if text_of(tr.find("h:td[@data-col='metric']", NS)).split()[0] in ("flag_masked_gradients", "robust_reliable")}
    assert words == {"raised", "unreliable"}


def test_best_and_ties_follow_the_stated_rule(published):
    _, site, suites, _ = published
    table = json.loads((site / "data" / f"{suites[1].name}--pgd-linf--digits-test.json").read_text(encoding="utf-8"))
    for column in [c for c in table["columns"] if c["direction"] in ("higher", "lower")]:
        cells = [r[column["key"]] for r in table["rows"] if r[column["key"]]["value"] is not None]
        trusted = [c for c in cells if not any("unreliable" in note for note in c["caveats"])]
        best = max(trusted, key=lambda c: c["value"] if column["direction"] == "higher" else -c["value"])
        for cell in cells:
            overlap = cell["ci_low"] <= best["ci_high"] and best["ci_low"] <= cell["ci_high"]
            assert cell["best"] == (cell in trusted and cell["value"] == best["value"])
            assert cell["tied"] == (cell in trusted and not cell["best"] and overlap)


def test_history_page_has_every_run_and_a_figure_per_metric(published):
    _, site, suites, _ = published
    page = parse(site / "suites" / suites[0].name / "history.html")
    runs = page.findall(".//h:table[@data-table='suite0--runs']/h:tbody/h:tr", NS)
    assert len(runs) == 3
    figures = page.findall(".//h:section[@class='figure']", NS)
    history = pd.read_csv(site / "data" / f"{suites[0].name}--history.csv")
    # one figure per task x dataset x headline result (params and FLOPs are not results over runs)
    assert len(figures) == history.groupby(["task", "dataset", "column"]).ngroups == 2 + 3 + 2 + 2
    assert history["run_id"].nunique() == 3


def test_model_page_shows_provenance_and_the_suite_numbers(published):
    _, site, suites, _ = published
    model = suites[0].models[3]
    page = parse(site / "models" / f"{model}.html")
    facts = {text_of(dt): text_of(dd) for dt, dd in zip(page.iterfind(".//h:dl[@class='facts']/h:dt", NS),
                                                         page.iterfind(".//h:dl[@class='facts']/h:dd", NS))}
    assert facts["weights sha256"] == f"{3:064x}" and "input_size" in facts["preprocessing"]
    assert facts["GFLOPs / image"] != "not measured (no latency task)"
    suite_cells = html_tables(site / "suites" / suites[0].name / "index.html")[("classification", "digits-test")]
    rows = {(text_of(tr.find("h:td[@data-col='suite']", NS)), text_of(tr.find("h:td[@data-col='metric']", NS))):
            tr.find("h:td[@data-col='value']", NS).get("data-value") for tr in page.iterfind(".//h:tbody/h:tr", NS)}
    assert rows[(suites[0].name, "top1")] == suite_cells[(model, "top1")]["data-value"]


def test_publish_command_prints_markdown_and_names_bad_input(published, tmp_path, capsys):
    root, _, suites, _ = published
    assert main(["publish", str(suites[0].folder), "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("**classification · digits-test**") and "| model |" in out
    target = tmp_path / "table.tex"
    assert main(["publish", str(suites[0].folder), "--format", "latex", "--table", "*pgd*", "--to", str(target)]) == 0
    assert target.read_text().count(r"\begin{tabular}") == 1
    assert main(["publish", str(tmp_path), "--to", str(tmp_path / "site")]) == 2
    assert "no results.sqlite found" in capsys.readouterr().err
    assert main(["publish", str(root), "--format", "csv"]) == 2
    assert "--format csv holds one table" in capsys.readouterr().err
    assert main(["publish", str(root / "suite1"), "--to", str(tmp_path / "site")]) == 0
    assert (tmp_path / "site" / "suites" / "suite1" / "index.html").is_file()
    assert main(["publish", str(root / "suite1"), "--to", str(tmp_path / "site")]) == 0  # republished in place
    (tmp_path / "mine" / "data").mkdir(parents=True)
    assert main(["publish", str(root / "suite1"), "--to", str(tmp_path / "mine")]) == 2  # never deletes the user's
    assert "did not write" in capsys.readouterr().err and (tmp_path / "mine" / "data").is_dir()


def test_publishing_reads_stores_without_changing_them(published, tmp_path, capsys):
    import shutil
    import sqlite3

    old = tmp_path / "old"
    shutil.copytree(published[2][0].folder, old)
    with sqlite3.connect(old / "results.sqlite") as conn:
        conn.execute("PRAGMA user_version = 1")
    before = (old / "results.sqlite").read_bytes()
    assert main(["publish", str(old), "--format", "md"]) == 2
    err = capsys.readouterr().err
    assert "schema 1" in err and str(old / "results.sqlite") in err and len(err.strip().splitlines()) == 1
    assert (old / "results.sqlite").read_bytes() == before and not list(old.glob("results.v*.sqlite"))


def test_model_pages_rank_each_headline_cell_within_its_suite_table(published):
    _, site, suites, _ = published
    for suite in suites[:2]:  # each suite's table ranks its own models
        cells = html_tables(site / "suites" / suite.name / "index.html")[("classification", "digits-test")]
        top1 = {model: float(cell["data-value"]) for (model, column), cell in cells.items()
                if column == "top1" and cell.get("data-value") not in (None, "")}
        assert len(top1) >= 5
        for model in suite.models:
            table = parse(site / "models" / f"{model}.html").find(f".//h:table[@data-table='model--{model}']", NS)
            ranks = {tuple(text_of(tr.find(f"h:td[@data-col='{col}']", NS)) for col in ("suite", "metric")):
                     text_of(tr.find("h:td[@data-col='rank']", NS)) for tr in table.iterfind(".//h:tbody/h:tr", NS)}
            expected = f"{1 + sum(v > top1[model] for v in top1.values())} of {len(top1)}" if model in top1 else "–"
            assert ranks.get((suite.name, "top1"), "–") == expected, (suite.name, model)  # a failed job: no row
