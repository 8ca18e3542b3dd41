"""What publishing may not do: name the build machine's paths, interleave two publishes into one broken site,
publish from (or past) a damaged store, or let a model's name break a page, a file name or an export."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import urllib.parse
from pathlib import Path

import html5lib
import pytest
import yaml
from markupsafe import escape
from PIL import Image

import harness
from harness.cli import main
from harness.report.exports import latex_escape
from harness.report.site import SITE_LOCK, publish_site
from publish_fixtures import write_suite

NS = {"h": "http://www.w3.org/1999/xhtml"}
REPOSITORY = Path(harness.__file__).resolve().parents[1]
REAL_HOME = os.path.expanduser("~")


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> sha256), dot files included."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(err: str, *names: object) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


# --- 1. no path of the build machine in anything published ------------------------------------------------

def _spellings(path: str) -> set[str]:
    """How a path can appear in a generated file: as is, JSON-escaped (pandas writes \\/), HTML-, LaTeX- and
    URL-escaped."""
    return {path, path.replace("/", "\\/"), str(escape(path)), latex_escape(path), urllib.parse.quote(path)}


@pytest.fixture(scope="module")
def leaky(tmp_path_factory):
    """A real run whose every input sits in a tmp folder and under a home folder of its own: the suite file,
    an image folder reached through --data-root, local weights; a model whose weights do not fit fails with
    an error naming the file; the command line names them all. Then the site is published."""
    from harness.data.digits import digits_arrays
    from harness.zoo import ZOO_MODELS

    base = tmp_path_factory.mktemp("build-machine")
    home = base / "home-of-builder"
    images, labels = digits_arrays()["test"]
    for i in range(20):
        folder = home / "data" / "digits" / str(labels[i])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).save(folder / f"{i}.png")
    weights = home / "weights" / "mine.safetensors"
    weights.parent.mkdir(parents=True)
    shutil.copyfile(ZOO_MODELS.get("resnet_digits").weights_file, weights)
    suite = {"name": "leaky", "version": 1, "defaults": {"batch_size": 16, "seed": 0},
             "models": [{"name": "mine", "source": "zoo", "arch": "resnet_digits", "checkpoint": str(weights)},
                        {"name": "misfit", "source": "zoo", "arch": "vit_digits", "checkpoint": str(weights)}],
             "datasets": [{"name": "folder", "kind": "imagefolder", "root": "{data_root}/digits", "num_classes": 10}],
             "tasks": [{"kind": "classification", "params": {"topk": [1]}}]}
    suite_file = base / "suites" / "leaky.yaml"
    suite_file.parent.mkdir()
    suite_file.write_text(yaml.safe_dump(suite))
    reports, site = base / "reports", base / "site"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        assert main(["--suite", str(suite_file), "--out", str(reports / "leaky"), "--data-root", str(home / "data"),
                     "--no-progress"]) == 1  # misfit failed
        assert main(["publish", str(reports), "--to", str(site)]) == 0
    return base, home, reports, site


def test_no_published_file_names_a_path_of_the_build_machine(leaky):
    base, home, reports, site = leaky
    needles = {str(base), str(base.resolve()), str(site.resolve()), str(REPOSITORY), os.getcwd(), str(home)}
    if len(Path(REAL_HOME).parts) > 1:
        needles.add(REAL_HOME)
    files = [p for p in site.rglob("*") if p.is_file()] + [reports / "leaky" / "index.html"]
    assert len(files) > 20 and {p.suffix for p in files} >= {".html", ".csv", ".json", ".md", ".tex", ".css", ".js"}
    hits = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for needle in needles:
            for spelling in _spellings(needle):
                if spelling in text:
                    at = text.index(spelling)
                    hits.append(f"{path.relative_to(base)}: {text[max(0, at - 60):at + len(spelling) + 40]!r}")
    assert not hits, "\n".join(hits)

    # what the pages say instead: places relative to the reports folder, the home folder as ~, others by name
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=True)
    index = parser.parse((site / "index.html").read_text(encoding="utf-8"))
    footer = {"".join(dt.itertext()): "".join(dd.itertext())
              for dt, dd in zip(index.iterfind(".//h:footer//h:dt", NS), index.iterfind(".//h:footer//h:dd", NS))}
    assert footer["sources"] == "leaky (reports/leaky)"
    model = parser.parse((site / "models" / "mine.html").read_text(encoding="utf-8"))
    facts = {"".join(dt.itertext()): "".join(dd.itertext())
             for dt, dd in zip(model.iterfind(".//h:dl[@class='facts']/h:dt", NS),
                               model.iterfind(".//h:dl[@class='facts']/h:dd", NS))}
    assert facts["weights"] == "checkpoint:~/weights/mine.safetensors"
    suite_page = (site / "suites" / "leaky" / "index.html").read_text(encoding="utf-8")
    assert "CheckpointError: ~/weights/mine.safetensors: weights do not fit" in suite_page
    assert "CheckpointError: ~/weights/mine.safetensors" in (site / "models" / "misfit.html").read_text("utf-8")
    runs = json.loads((site / "data" / "leaky--runs.json").read_text(encoding="utf-8"))
    assert runs["rows"][0]["argv"] == "--suite …/leaky.yaml --out reports/leaky --data-root ~/data --no-progress"
    assert "~/weights/mine.safetensors: weights do not fit" in (reports / "leaky" / "index.html").read_text("utf-8")
    # the run's own record beside its store keeps the full paths
    assert str(home / "weights" / "mine.safetensors") in (reports / "leaky" / "results.json").read_text("utf-8")


def test_text_exports_name_no_path_of_the_build_machine(leaky, capsys):
    base, home, reports, _ = leaky
    for fmt in ("md", "latex", "json"):
        assert main(["publish", str(reports), "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert "mine" in out and str(base) not in out and str(base).replace("/", "\\/") not in out, fmt
        assert "from reports" in out


# --- 2. two publishes into one folder; a publish that fails --------------------------------------------------

@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reports")
    write_suite(root, "suite0", ["resnet_00", "vit_01", "coatnet_02", "resnet_03"], runs=2)
    write_suite(root, "suite1", ["resnet_00", "vit_01", "coatnet_02"], runs=2, seed=1)
    return root


def _site_is_whole(site: Path, reference: dict[str, str]) -> None:
    import re

    files = snapshot(site)
    assert {f for f in files if not f.startswith(".")} == {f for f in reference if not f.startswith(".")}
    assert not [f for f in files if f.startswith(".visionbench-building-") or f.startswith(".visionbench-replaced-")]
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        html5lib.HTMLParser(strict=True).parse(text)
        for link in re.findall(r'\shref="([^"#]+)', text):
            assert (page.parent / urllib.parse.unquote(link)).is_file(), (page, link)


def test_two_publishes_into_one_folder_at_once_give_one_whole_site(reports, tmp_path):
    """Two processes publish different reports into one site: the site is then wholly one of the two."""
    sources = [reports / "suite0", reports / "suite1"]
    references = []
    for index, source in enumerate(sources):
        publish_site(source, tmp_path / f"alone{index}")
        references.append({f for f in snapshot(tmp_path / f"alone{index}") if not f.startswith(".")})
    site = tmp_path / "site"
    publish_site(reports, site)  # an earlier site, which both replace
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPOSITORY), os.environ.get("PYTHONPATH", "")])}
    processes = [subprocess.Popen([sys.executable, "-c", "import sys; from harness.cli import main; "
                                   "sys.exit(main(sys.argv[1:]))", "publish", str(source), "--to", str(site)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for source in sources]
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0 and "Traceback" not in err, err
        assert all(line.startswith("waiting: another visionbench publish") for line in err.splitlines()), err
        assert "pages" in out
    files = {f for f in snapshot(site) if not f.startswith(".")}
    assert files in references, sorted(files ^ references[0])
    _site_is_whole(site, snapshot(tmp_path / f"alone{references.index(files)}"))


def test_a_publish_waits_for_the_one_writing_the_site_then_gives_up_in_one_line(reports, tmp_path):
    import fcntl

    site = tmp_path / "site"
    publish_site(reports, site)

    def pages() -> dict[str, str]:
        return {name: digest for name, digest in snapshot(site).items() if name != SITE_LOCK}

    before = pages()
    with open(site / SITE_LOCK, "a+") as held:  # another publish is writing this site
        fcntl.flock(held, fcntl.LOCK_EX)
        held.truncate(0)
        held.write("4242\n")
        held.flush()
        with pytest.raises(Exception) as refused:
            publish_site(reports, site, wait=0.5)
    message = str(refused.value)
    assert type(refused.value).__name__ == "UsageError" and "\n" not in message
    assert "another visionbench publish (pid 4242) is writing this site" in message and str(site) in message
    assert pages() == before
    publish_site(reports, site, wait=0.5)  # once it is done, the next publish goes ahead
    _site_is_whole(site, before)


def test_a_publish_that_fails_midway_leaves_the_earlier_site_as_it_was(reports, tmp_path, monkeypatch):
    import harness.report.site as site_module

    site = tmp_path / "site"
    publish_site(reports, site)
    before = snapshot(site)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full while writing the model pages")

    monkeypatch.setattr(site_module, "model_table", broken)
    with pytest.raises(RuntimeError):
        publish_site(reports, site)
    assert snapshot(site) == before


# --- 3. damaged and foreign stores ---------------------------------------------------------------------------

def _foreign_schema(path: Path) -> None:
    with sqlite3.connect(path) as conn:  # the same file name and schema number, another program's tables
        conn.executescript("CREATE TABLE runs (run_id TEXT, started_at TEXT); CREATE TABLE jobs (suite TEXT, x INT);"
                           "CREATE TABLE results (y REAL); INSERT INTO jobs VALUES ('s', 1); PRAGMA user_version = 2;")
    conn.close()


def _other_database(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.executescript("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('hello');")
    conn.close()


def test_a_damaged_or_foreign_store_is_refused_in_one_line_and_the_site_stays(reports, tmp_path, capsys):
    root = tmp_path / "reports"
    shutil.copytree(reports, root)
    site = tmp_path / "site"
    assert main(["publish", str(root), "--to", str(site)]) == 0
    capsys.readouterr()
    before = snapshot(site)
    good = (reports / "suite0" / "results.sqlite").read_bytes()
    damage = {
        "not a database": lambda p: p.write_text("suite,model,top1\nclassification,resnet,0.9\n" * 40),
        "empty": lambda p: p.write_bytes(b""),
        "truncated": lambda p: p.write_bytes(good[:len(good) // 2]),
        "cut at the end": lambda p: p.write_bytes(good[:-700]),
        "foreign schema": _foreign_schema,
        "another program's database": _other_database,
    }
    for what, make in damage.items():
        bad = root / "zz-bad" / "results.sqlite"
        shutil.rmtree(bad.parent, ignore_errors=True)
        bad.parent.mkdir()
        make(bad)
        content = bad.read_bytes()
        for command in (["--to", str(site)], ["--format", "md"]):
            assert main(["publish", str(root), *command]) == 2, what
            captured = capsys.readouterr()
            line = one_line_error(captured.err, bad)
            assert captured.out == "", what
            if command[0] == "--to":
                assert "nothing was published" in line and f"{site} is as it was" in line, line
        assert snapshot(site) == before, what
        assert bad.read_bytes() == content and sorted(p.name for p in bad.parent.iterdir()) == ["results.sqlite"], what


# --- 4. model names that are markup, unicode, very long ------------------------------------------------------

NAMES = ["resnet_00", "<script>alert(1)</script>", "ViT-Ø-日本語-🙂", "ViT-Ж", '"><img src=x onerror=alert(2)>',
         "ConvNeXt-" + "é" * 20 + "-" + "x" * 270, "a b", "a-b"]


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    assert len(NAMES[5]) == 300
    root = tmp_path_factory.mktemp("named-reports")
    write_suite(root, "names", NAMES, runs=2)
    site = tmp_path_factory.mktemp("named-site")
    publish_site(root, site)
    return root, site


def _model_links(site: Path) -> dict[str, Path]:
    """model name -> its page, read from the index's models table."""
    page = html5lib.HTMLParser(strict=True, namespaceHTMLElements=True).parse(
        (site / "index.html").read_text(encoding="utf-8"))
    links = {}
    for row in page.iterfind(".//h:table[@data-table='models']/h:tbody/h:tr", NS):
        link = row.find("h:td[@data-col='model']/h:a", NS)
        links[row.get("data-model")] = site / urllib.parse.unquote(link.get("href"))
        assert "".join(link.itertext()) == row.get("data-model")
    return links


def test_every_model_name_gets_its_own_bounded_safe_page_and_exact_exports(named):
    import re

    root, site = named
    links = _model_links(site)
    assert set(links) == set(NAMES)
    assert len({p.name.lower() for p in links.values()}) == len(NAMES)  # one file each, whatever the file system
    for name, page in links.items():
        assert page.is_file() and page.parent == site / "models"
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,80}\.html", page.name), page.name
        if re.fullmatch(r"[A-Za-z0-9._-]+", name):
            assert page.name == f"{name}.html"  # a plain name keeps its readable URL
        html5lib.HTMLParser(strict=True).parse(page.read_text(encoding="utf-8"))
    assert all(len(p.name) <= 120 for p in site.rglob("*"))
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "<script>alert" not in text and "<img" not in text, page
    table = json.loads((site / "data" / "names--classification--digits-test.json").read_text(encoding="utf-8"))
    assert {r["model"] for r in table["rows"]} == set(NAMES)
    rows = list(csv.DictReader(io.StringIO((site / "data" / "names--classification--digits-test.csv")
                                           .read_text(encoding="utf-8"))))
    assert {r["model"] for r in rows} == set(NAMES)
    markdown = (site / "data" / "names--classification--digits-test.md").read_text(encoding="utf-8")
    assert not re.search(r"(?<!\\)[<>]", markdown) and r"\<script\>alert(1)\</script\>" in markdown  # no raw HTML
    assert NAMES[2] in markdown and NAMES[5] in markdown
    latex = (site / "data" / "names--classification--digits-test.tex").read_text(encoding="utf-8")
    assert r"\textless{}script\textgreater{}alert(1)\textless{}/script\textgreater{}" in latex and "<" not in latex
    model_export = json.loads((links[NAMES[1]].parent.parent / "data" /
                               f"model--{links[NAMES[1]].stem}.json").read_text(encoding="utf-8"))
    assert model_export["meta"]["model"] == NAMES[1]


@pytest.mark.browser
def test_model_names_show_as_text_and_run_nothing_in_chromium(named, tmp_path):
    from chromium import start_chromium
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    from harness.report.render import render_html
    from harness.store import ResultStore

    root, site = named
    store = ResultStore(root / "names" / "results.sqlite")
    report = tmp_path / "report.html"  # the single-run report of the same results
    report.write_text(render_html(store.frame(), "names"), encoding="utf-8")
    store.close()
    links = _model_links(site)
    pages = {"index": (site / "index.html", NAMES), "suite": (site / "suites" / "names" / "index.html", NAMES),
             "report": (report, NAMES), **{f"model {n[:20]}": (p, [n]) for n, p in links.items()}}
    driver = start_chromium()
    try:
        for what, (page, shown) in pages.items():
            driver.get(page.as_uri())
            with pytest.raises(NoAlertPresentException):
                driver.switch_to.alert.text  # no alert() ran
            assert driver.execute_script("return document.querySelectorAll('img').length") == 0, what
            assert driver.execute_script("return document.scripts.length") == 1, what  # only the page's own
            text = driver.find_element(By.TAG_NAME, "body").text
            for name in shown:
                assert name in text, (what, name)
        driver.get((site / "suites" / "names" / "history.html").as_uri())
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text
        titles = driver.execute_script("return Array.from(document.querySelectorAll('svg title'), t => t.textContent)")
        assert all(any(t.startswith(f"{name} (") for t in titles) for name in NAMES)
        # a row's permalink reaches its row, whatever the name
        driver.get((site / "suites" / "names" / "index.html").as_uri())
        anchor = next(r.get_attribute("id") for r in driver.find_elements(By.CSS_SELECTOR, "table.data tr[data-model]")
                      if r.get_attribute("data-model") == NAMES[1])
        driver.get((site / "index.html").as_uri())
        driver.get((site / "suites" / "names" / "index.html").as_uri() + "#" + urllib.parse.quote(anchor))
        assert driver.find_element(By.ID, anchor).get_attribute("class") == "targeted"
    finally:
        driver.quit()
