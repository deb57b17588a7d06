"""Look at Superset's dashboards as a person would, in headless Chromium; print what each chart shows as JSON.

Run by the Python of Superset's virtual environment (Selenium is one of Superset's own
dependencies there), with Debian's ``chromium`` and ``chromium-driver``; no browser is
downloaded. Usage::

    superset_browser.py BASE_URL CREDENTIALS_JSON OUT_DIR SLUG:CHARTS [SLUG:CHARTS ...] [--watch SLUG:CHART:SECONDS:UNTIL]

For each dashboard it logs in (once), opens the dashboard, waits until its CHARTS chart
holders have all rendered (no loading indicator left), saves ``OUT_DIR/SLUG.png`` and
reports each chart's text and whether it shows an error. ``--watch`` keeps one dashboard
open and records one chart's text at every change, for SECONDS or until it reads UNTIL:
the live dashboard's own refresh, not a reload by the test.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

RENDER_TIMEOUT_S = 120
HOLDER = '[data-test="dashboard-component-chart-holder"]'
LOADING = '[data-test="loading-indicator"]'
CHART = '[data-test="chart-container"]'
ERROR = '.error-alert, .ant-alert-error, [data-test="error-tooltip"]'


def browser() -> webdriver.Chrome:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        sys.exit("headless Chromium not found: install Debian's browser and its driver with `apt-get install chromium chromium-driver`")
    options = Options()
    options.binary_location = chromium
    # Tall enough that every chart is in view: Superset renders charts off screen lazily.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1600,1900"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(driver))


def login(driver: webdriver.Chrome, base: str, creds: dict) -> None:
    driver.get(f"{base}/login/")
    driver.find_element(By.ID, "username").send_keys(creds["username"])
    driver.find_element(By.ID, "password").send_keys(creds["password"])
    driver.find_element(By.CSS_SELECTOR, '[data-test="login-button"]').click()
    deadline = time.monotonic() + 30
    while "/login" in driver.current_url:
        if time.monotonic() > deadline:
            sys.exit(f"login to {base} failed: still on {driver.current_url}")
        time.sleep(0.3)


def charts(driver: webdriver.Chrome) -> dict[str, dict]:
    """Each chart holder's name, text and error state, once none is loading."""
    out = {}
    for holder in driver.find_elements(By.CSS_SELECTOR, HOLDER):
        name = holder.find_element(By.CSS_SELECTOR, "[data-test-chart-name]").get_attribute("data-test-chart-name")
        out[name] = {
            "text": holder.text,
            "loading": bool(holder.find_elements(By.CSS_SELECTOR, LOADING)),
            "error": bool(holder.find_elements(By.CSS_SELECTOR, ERROR))
            or any(t in holder.text for t in ("Unexpected error", "Data error")),
            # what a chart draws (echarts' canvas, a table, a big number), or its "no data" notice; not the holder's icons
            "rendered": bool(holder.find_elements(By.CSS_SELECTOR, f"{CHART} canvas, {CHART} table, {CHART} .header-line"))
            or any(t in holder.text for t in ("No results", "No data")),
        }
    return out


def open_dashboard(driver: webdriver.Chrome, base: str, slug: str, expected: int) -> dict[str, dict]:
    driver.get(f"{base}/superset/dashboard/{slug}/?standalone=1")
    return rendered(driver, expected)


def rendered(driver: webdriver.Chrome, expected: int) -> dict[str, dict]:
    """The charts once all ``expected`` have drawn (or what there is at the timeout, marked)."""
    deadline = time.monotonic() + RENDER_TIMEOUT_S
    while True:
        try:
            seen = charts(driver)
        except StaleElementReferenceException:  # re-rendered while read
            continue
        done = len(seen) == expected and all((c["rendered"] or c["error"]) and not c["loading"] for c in seen.values())
        if done or time.monotonic() > deadline:
            time.sleep(1)  # animations (echarts) settle before the screenshot
            return charts(driver) if done else {**seen, "_timeout": {"text": "", "loading": True, "error": True, "rendered": False}}
        time.sleep(0.5)


def reached(text: str, until: str) -> bool:
    """Whether a chart's figure (its last line) reads ``until``, or exceeds N when ``until`` is ``>N``."""
    figure = text.strip().splitlines()[-1]
    if until.startswith(">"):
        digits = figure.replace(",", "")
        return digits.isdigit() and int(digits) > int(until[1:])
    return figure == until


def watch(driver: webdriver.Chrome, chart: str, seconds: float, until: str) -> list[str]:
    """The texts one chart shows while the page refreshes itself: for ``seconds``, or until it has :func:`reached` ``until``."""
    texts: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            text = charts(driver).get(chart, {}).get("text", "")
        except StaleElementReferenceException:
            continue
        if text and (not texts or texts[-1] != text):
            texts.append(text)
            if reached(text, until):
                break
        time.sleep(0.5)
    return texts


def main(argv: list[str]) -> None:
    base, creds_file, out_dir, *rest = argv
    watch_spec = None
    if "--watch" in rest:
        i = rest.index("--watch")
        watch_spec, rest = rest[i + 1], rest[:i] + rest[i + 2 :]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    driver = browser()
    report: dict = {}
    try:
        login(driver, base, json.loads(Path(creds_file).read_text())["superset"])
        for item in rest:
            slug, expected = item.split(":")
            report[slug] = open_dashboard(driver, base, slug, int(expected))
            driver.save_screenshot(str(out / f"{slug}.png"))
        if watch_spec:
            slug, chart, seconds, until = watch_spec.split(":")
            print("WATCHING", file=sys.stderr, flush=True)  # the caller changes the data now
            report["_watch"] = watch(driver, chart, float(seconds), until) if slug == list(report)[-1] else []
            rendered(driver, len(report[slug]))  # the screenshot after its refreshes, not in the middle of one
            driver.save_screenshot(str(out / f"{slug}.png"))
    finally:
        driver.quit()
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
