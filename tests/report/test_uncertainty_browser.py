"""The Uncertainty section of suites/uncertainty.yaml's report as a person sees it: headless Chromium renders
the calibration table, a reliability diagram per model, the OOD tables and one ROC plot per detector and set."""
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
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uncertainty-report")
    run_suite(REPO / "suites" / "uncertainty.yaml", out=out, progress=False)
    return out / "index.html"


def figure_titled(browser, start: str):
    from selenium.webdriver.common.by import By

    for heading in browser.find_elements(By.CSS_SELECTOR, "h3"):
        if heading.text.startswith(start):
            return heading.find_element(By.XPATH, "..")
    raise AssertionError(f"no figure titled {start!r}")


def test_the_uncertainty_section_shows_every_figure_and_table(browser, report, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(report.as_uri())
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
