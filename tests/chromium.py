"""Headless Chromium for the browser tests, started with the flags this machine needs (no background
networking: the network is closed) — or the test is skipped when Chromium or its driver is missing."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def start_chromium(downloads: Path | None = None):
    """A selenium Chrome driver on headless Chromium; ``downloads``: where downloads land, without asking."""
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(flag)
    if downloads is not None:
        options.add_experimental_option("prefs", {
            "download.default_directory": str(downloads), "download.prompt_for_download": False,
            "profile.default_content_setting_values.automatic_downloads": 1})  # several files from one page
    from selenium.webdriver.chrome.service import Service

    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
