"""The published site as a person uses it, from file:// in headless Chromium: sort, filters, search, column
choice, "complete results only", permalinks and downloads; a screenshot of each page type, checked non-blank."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chromium import start_chromium

from harness.report.site import publish_site
from publish_fixtures import write_reports

pytestmark = pytest.mark.browser
ARTIFACTS = "screenshots"


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    driver = start_chromium(downloads)
    driver.set_window_size(1280, 1400)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reports")
    write_reports(root, models=6, suites=2, runs=3)
    out = tmp_path_factory.mktemp("site")
    publish_site(root, out)
    return out


def rows(table):
    from selenium.webdriver.common.by import By

    return [r for r in table.find_elements(By.CSS_SELECTOR, "tbody tr") if r.is_displayed()]


def column_values(table, key):
    from selenium.webdriver.common.by import By

    out = []
    for row in rows(table):
        raw = row.find_element(By.CSS_SELECTOR, f'td[data-col="{key}"]').get_attribute("data-value")
        out.append(float(raw) if raw else None)
    return out


def choose(browser, name, value):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.CSS_SELECTOR, f'select[data-filter="{name}"]')).select_by_value(value)


def test_sort_filters_search_columns_and_complete_only(browser, site):
    from selenium.webdriver.common.by import By

    browser.get((site / "suites" / "suite0" / "index.html").as_uri())
    table = browser.find_element(By.ID, "table-suite0--classification--digits-test")
    assert len(rows(table)) == 6

    heading = table.find_element(By.CSS_SELECTOR, 'th[data-col="top1"]')
    heading.click()
    values = column_values(table, "top1")
    present = [v for v in values if v is not None]
    assert present == sorted(present) and values[len(present):] == [None] * (len(values) - len(present))
    heading.click()
    present = [v for v in column_values(table, "top1") if v is not None]
    assert present == sorted(present, reverse=True)

    choose(browser, "family", "cnn")
    assert {r.get_attribute("data-family") for r in rows(table)} == {"cnn"}
    assert "of" in browser.find_element(By.CSS_SELECTOR, "[data-count]").text
    choose(browser, "family", "")

    search = browser.find_element(By.CSS_SELECTOR, 'input[data-filter="search"]')
    search.send_keys("vit")
    assert {r.get_attribute("data-model") for r in rows(table)} == {"vit_01", "vit_04"}
    search.clear()
    search.send_keys(" ")  # an input event, then nothing to match
    search.clear()

    complete = browser.find_element(By.CSS_SELECTOR, 'input[data-filter="complete"]')
    complete.click()
    shown = {r.get_attribute("data-model") for r in rows(table)}
    assert "resnet_00" not in shown and "coatnet_02" not in shown and len(shown) == 4  # partial, failed
    complete.click()

    choose(browser, "task", "pgd-linf")
    assert not browser.find_element(By.ID, "suite0--classification--digits-test").is_displayed()
    assert browser.find_element(By.ID, "suite0--pgd-linf--digits-test").is_displayed()
    choose(browser, "task", "")

    section = browser.find_element(By.ID, "suite0--classification--digits-test")
    section.find_element(By.CSS_SELECTOR, "details.columns summary").click()
    box = section.find_element(By.CSS_SELECTOR, 'details.columns input[data-col="top5"]')
    box.click()
    assert not table.find_element(By.CSS_SELECTOR, 'th[data-col="top5"]').is_displayed()
    assert all(not c.is_displayed() for c in table.find_elements(By.CSS_SELECTOR, 'td[data-col="top5"]'))
    box.click()
    assert table.find_element(By.CSS_SELECTOR, 'th[data-col="top5"]').is_displayed()


def test_permalinks_reach_tables_and_rows_even_when_filtered(browser, site):
    from selenium.webdriver.common.by import By

    page = (site / "suites" / "suite0" / "index.html").as_uri()
    browser.get(page + "#suite0--pgd-linf--digits-test--vit_04")
    row = browser.find_element(By.ID, "suite0--pgd-linf--digits-test--vit_04")
    assert row.is_displayed() and "targeted" in row.get_attribute("class")
    choose(browser, "family", "cnn")
    assert not row.is_displayed()
    browser.execute_script("location.hash = 'suite0--classification--digits-test--vit_01'")
    target = browser.find_element(By.ID, "suite0--classification--digits-test--vit_01")
    assert target.is_displayed()  # the filter was cleared to show the linked row
    link = target.find_element(By.CSS_SELECTOR, "a.permalink").get_attribute("href")
    assert link.endswith("#suite0--classification--digits-test--vit_01")
    model_link = target.find_element(By.CSS_SELECTOR, 'td[data-col="model"] a')
    model_link.click()
    assert browser.current_url.endswith("models/vit_01.html") and "vit_01" in browser.title


@pytest.fixture(scope="module")
def served(site):
    """The site over HTTP on the loopback interface, as a static host (GitHub Pages) serves it."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_downloads_give_the_published_files(browser, site, served, downloads):
    """Over HTTP every export downloads. (From file:// Chrome ignores ``download`` on file links: a CSV still
    downloads, JSON and text exports open in a tab.)"""
    from selenium.webdriver.common.by import By

    browser.get(served + "suites/suite1/index.html")
    section = browser.find_element(By.ID, "suite1--corruptions--digits-test")
    for fmt, extension in (("csv", "csv"), ("json", "json"), ("md", "md"), ("latex", "tex")):
        section.find_element(By.CSS_SELECTOR, f'a[data-format="{fmt}"]').click()
        name = f"suite1--corruptions--digits-test.{extension}"
        published, deadline = (site / "data" / name).read_bytes(), time.time() + 15
        # Chrome may create the file empty before writing it: wait for the whole download, not for its name
        while not ((downloads / name).is_file() and (downloads / name).read_bytes() == published) \
                and time.time() < deadline:
            time.sleep(0.2)
        assert (downloads / name).read_bytes() == published


@pytest.mark.parametrize("page", ["index.html", "suites/suite0/index.html", "suites/suite0/history.html",
                                  "models/vit_01.html"])
def test_screenshot_of_each_page_type_is_not_blank(browser, site, page, tmp_path_factory):
    browser.get((site / page).as_uri())
    folder = tmp_path_factory.getbasetemp() / ARTIFACTS
    folder.mkdir(exist_ok=True)
    shot = folder / (page.replace("/", "_").removesuffix(".html") + ".png")
    browser.save_screenshot(str(shot))
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 20  # text, tables and figures: far from a blank page
    assert (pixels < 128).mean() > 0.01  # and dark ink on a fair share of it
