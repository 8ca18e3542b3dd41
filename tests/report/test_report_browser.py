"""The leaderboard as a person sees it: headless Chromium renders it, a click sorts a column; and the Uncertainty
section of suites/uncertainty.yaml's report (calibration table, reliability diagrams, OOD tables, ROC plots)."""
from __future__ import annotations

from pathlib import Path

import pytest

from chromium import start_chromium
from harness import run_suite

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]
MODELS = ["resnet_digits", "convnext_digits", "vit_digits", "swin_digits"]


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


@pytest.fixture(scope="module")
def uncertainty_report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uncertainty-report")
    run_suite(REPO / "suites" / "uncertainty.yaml", out=out, progress=False)
    return out / "index.html"


def figure_titled(browser, start: str):
    from selenium.webdriver.common.by import By

    for heading in browser.find_elements(By.CSS_SELECTOR, "h3"):
        if heading.text.startswith(start):
            return heading.find_element(By.XPATH, "..")
    raise AssertionError(f"no figure titled {start!r}")


def test_the_uncertainty_section_shows_every_figure_and_table(browser, uncertainty_report, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(uncertainty_report.as_uri())
    calibration = figure_titled(browser, "Uncertainty: calibration before and after temperature scaling")
    table = calibration.find_element(By.TAG_NAME, "table")
    assert table.is_displayed()
    text = table.text
    assert all(model in text for model in MODELS) and "(T)" in text and "T" in text.split()
    assert "‡" in calibration.text and "search bound" in calibration.text  # convnext's separable calibration half
    for model in MODELS:
        svg = figure_titled(browser, f"Uncertainty: reliability diagram of {model}").find_element(By.TAG_NAME, "svg")
        assert svg.is_displayed() and svg.size["width"] > 200 and svg.size["height"] > 100
    for detector in ("msp", "maxlogit", "energy", "mahalanobis", "knn"):
        ood = figure_titled(browser, f"Uncertainty: OOD detection with {detector}")
        assert "FPR@95TPR: OpenOOD's convention" in ood.text and all(m in ood.text for m in MODELS)
        for dataset in ("letters", "textures", "noise"):
            roc = figure_titled(browser, f"Uncertainty: ROC curves of {detector} on {dataset}")
            svg = roc.find_element(By.TAG_NAME, "svg")
            assert svg.is_displayed() and svg.size["width"] > 200
            assert len(svg.find_elements(By.CSS_SELECTOR, "g[id^=hover-]")) == len(MODELS)
    family = figure_titled(browser, "Uncertainty: CNN vs transformer OOD detection")
    assert "cnn" in family.text.lower() and "transformer" in family.text.lower()
    browser.save_screenshot(str(tmp_path / "uncertainty.png"))
    assert (tmp_path / "uncertainty.png").stat().st_size > 10_000
