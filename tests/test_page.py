"""The status page at `/`, in a real browser (Debian's chromium, headless, driven by
selenium through chromedriver): what a person sees during a drain and a failover."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from failover.page import render
from failover.state.store import Event
from tests.builders import ROOT
from tests.service_env import EAST, WEST, Env, served_east, wait_for

ARTIFACTS = Path(os.environ.get("FAILOVER_ARTIFACTS", ROOT / "artifacts"))


def status(regions: dict[str, list[tuple[str, bool]]], records: list[dict[str, Any]],
           ready: bool = True) -> dict[str, Any]:
    """/status data: each region's endpoints (id, healthy), and the records' decisions."""
    return {"zone": "example.test.", "provider": "bind", "ready": ready, "problems": [],
            "zones": [{"zone": "example.test.", "provider": "bind"}],
            "regions": {name: {"drained": False, "healthy": any(ok for _, ok in eps),
                               "endpoints": [{"id": i, "healthy": ok} for i, ok in eps]}
                        for name, eps in regions.items()},
            "overrides": [], "records": records}


def decision(name: str, values: list[str], basis: str = "health") -> dict[str, Any]:
    return {"name": name, "type": "A", "policy": "failover", "desired": values,
            "basis": basis, "reason": "why"}


def part(page: bytes, marker: str, end: str = "</div>") -> str:
    """The page's text from `marker` (an element's id=...) up to the next `end`."""
    text = page.decode()
    start = text.index(marker)
    return text[start:text.index(end, start)]


def test_every_region_out_is_said_in_red_not_ready_in_green() -> None:
    down = {"us-east-1": [("us-east-1/a", False)], "eu-west-1": [("eu-west-1/a", False)]}
    page = render(status(down, [decision("api.example.test.", ["127.0.1.1"], "fail_open"),
                                decision("www.example.test.", [], "closed")]), [], [], {}, 1000.0)
    banner = part(page, "<div class='box alert' id=problems>")  # red, not the green box
    assert "nothing degraded" not in page.decode()
    assert "every region of api.example.test. A is out: failing open" in banner
    assert "every region of www.example.test. A is out: answering nothing" in banner


def test_before_the_first_probe_round_the_records_are_listed_as_waiting() -> None:
    configured = [("api.example.test.", "A", "failover"), ("www.example.test.", "A", "weighted")]
    page = render(status({"us-east-1": [("us-east-1/a", True)]}, [], ready=False), [], [], {},
                  1000.0, configured)
    assert "<h2>Records (2)</h2>" in page.decode()
    records = part(page, "id=records")
    assert records.count("waiting for the first probe round") == 2
    assert "www.example.test." in records and "weighted" in records


def test_a_region_with_one_endpoint_down_is_partly_healthy_and_names_it() -> None:
    page = render(status({"us-east-1": [("us-east-1/v4", False), ("us-east-1/v6", True)]},
                         [decision("api.example.test.", ["127.0.2.1"])]), [], [], {}, 1000.0)
    row = part(page, "data-region='us-east-1'", "</table>")
    assert "partly healthy: us-east-1/v4 down" in row.split("<td>")[2]


def test_last_hour_draws_only_the_records_in_the_config() -> None:
    current = [(f"r{i}.example.test.", "A", "failover") for i in range(2)]
    decisions = [Event(at, "decision", f"{name} A", "", {"values": [value]})
                 for name in [f"r{i}.example.test." for i in range(5)]
                 for at, value in ((500.0, "192.0.2.1"), (900.0, "192.0.2.2"))]
    page = render(status({"us-east-1": [("us-east-1/a", True)]},
                         [decision(n, ["192.0.2.2"]) for n, _, _ in current]),
                  [], decisions, {}, 1000.0, current).decode()
    timeline = page[page.index("id=timeline"):page.index("</svg>")]
    assert "r0.example.test. A" in timeline and "r1.example.test. A" in timeline
    assert "r2.example.test." not in timeline and "r4.example.test." not in timeline
    assert "3 record(s) no longer in the config changed answer in the last hour" in page


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

    # on a 390 px phone each record is a card: what DNS serves and why are on screen
    browser.set_window_size(390, 900)
    browser.get(url)
    width = browser.execute_script("return document.documentElement.clientWidth")
    assert width <= 390
    for table, label in (("records", "in DNS"), ("records", "why"), ("overrides", "expires")):
        cell = browser.find_element(By.CSS_SELECTOR, f"#{table} td[data-l='{label}']")
        assert cell.is_displayed() and cell.text
        assert cell.rect["x"] >= 0 and cell.rect["x"] + cell.rect["width"] <= width, (
            label, cell.rect, width)
    assert browser.find_element(By.CSS_SELECTOR, "#records td[data-l='in DNS']").text \
        .startswith(WEST)
    shot = ARTIFACTS / "status-page-390px.png"
    assert browser.save_screenshot(str(shot))
