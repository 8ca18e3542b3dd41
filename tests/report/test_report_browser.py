"""The leaderboard as a person sees it: headless Chromium renders it, a click sorts a column."""
from __future__ import annotations

from pathlib import Path

import pytest

from chromium import start_chromium

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    driver = start_chromium()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def report(classification_run) -> Path:
    return classification_run / "index.html"


def test_leaderboard_renders_and_sorts_on_click(browser, report, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(report.as_uri())
    assert "classification" in browser.title
    table = browser.find_element(By.CSS_SELECTOR, "table.leaderboard")
    assert table.is_displayed()
    models = [row.get_attribute("data-model") for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert sorted(models) == ["convnext_digits", "resnet_digits", "swin_digits", "vit_digits"]
    families = {b.text for b in table.find_elements(By.CSS_SELECTOR, ".fam")}
    assert families == {"cnn", "transformer"}

    model_heading = table.find_elements(By.CSS_SELECTOR, "thead th")[1]
    model_heading.click()
    ascending = [row.get_attribute("data-model") for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert ascending == sorted(models)
    model_heading.click()
    assert [r.get_attribute("data-model") for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")] == \
        sorted(models, reverse=True)

    top1_heading = next(h for h in table.find_elements(By.CSS_SELECTOR, "thead th") if h.text.startswith("top1"))
    top1_heading.click()
    column = [h.text for h in table.find_elements(By.CSS_SELECTOR, "thead th")].index(top1_heading.text)
    values = [float(row.find_elements(By.TAG_NAME, "td")[column].get_attribute("data-value"))
              for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert values == sorted(values)

    # the CNN-vs-transformer analysis: cost-matched pair (convnext vs swin) and a findings paragraph
    pairs = browser.find_element(By.ID, "matched-pairs")
    assert pairs.is_displayed() and "convnext_digits" in pairs.text and "swin_digits" in pairs.text
    assert "matched on parameters" in browser.find_element(By.CSS_SELECTOR, "p.findings").text

    footer = browser.find_element(By.TAG_NAME, "footer").text
    assert "Provenance" in footer and "suite_hash" in footer
    browser.save_screenshot(str(tmp_path / "leaderboard.png"))
    assert (tmp_path / "leaderboard.png").stat().st_size > 10_000
