"""The status page at `/`, in a real browser (Debian's chromium, headless, driven by
selenium through chromedriver): what a person sees during a drain and a failover."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.builders import ROOT
from tests.service_env import EAST, WEST, Env, served_east, wait_for

ARTIFACTS = Path(os.environ.get("FAILOVER_ARTIFACTS", ROOT / "artifacts"))


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium and chromedriver are not installed: make test installs them")
        pytest.skip("needs chromium and chromium-driver (apt-get install chromium "
                    "chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1100,1500"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_status_page_shows_a_drain_and_a_failover(env: Env, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    url = f"http://127.0.0.1:{env.api_port}/"
    env.start_controller()
    assert wait_for(served_east(env)), env.log()

    def region_state(region: str) -> str:
        browser.get(url)
        row = browser.find_element(By.CSS_SELECTOR, f"tr[data-region='{region}']")
        return str(row.find_elements(By.TAG_NAME, "td")[1].text)

    assert wait_for(lambda: region_state("us-east-1") == "healthy", timeout=20)
    assert "ready" in browser.find_element(By.ID, "problems").text
    # the page's Content-Security-Policy lets its style sheet apply (h1 is 32px unstyled)
    assert browser.find_element(By.TAG_NAME, "h1").value_of_css_property("font-size") == "20px"
    healthy = browser.find_element(By.CSS_SELECTOR, "tr[data-region='us-east-1'] .ok")
    assert healthy.value_of_css_property("color") == "rgba(46, 125, 50, 1)"  # green
    records = browser.find_element(By.ID, "records").text
    assert "api.example.test." in records and EAST in records

    assert env.cli("drain", "us-east-1", "--reason", "db maintenance").returncode == 0
    assert wait_for(lambda: env.answer() == {WEST}, timeout=10), env.log()
    assert wait_for(lambda: region_state("us-east-1") == "DRAINED", timeout=20)
    overrides = browser.find_element(By.ID, "overrides").text
    assert "drain us-east-1" in overrides and "db maintenance" in overrides

    # the failover is on the timeline: a red mark where the answer changed
    def marks() -> int:
        browser.get(url)
        return len(browser.find_elements(By.CSS_SELECTOR, "#timeline line.failover"))

    assert wait_for(lambda: marks() >= 1, timeout=20)
    assert WEST in browser.find_element(By.ID, "records").text
    # the legend's squares take the colours of the answers they name
    legend = browser.find_elements(By.CSS_SELECTOR, "span.c0, span.c1")
    assert legend and all(s.value_of_css_property("color") in (
        "rgba(46, 125, 50, 1)", "rgba(21, 101, 192, 1)") for s in legend)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "status-page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"status page screenshot: {shot}")
