"""A real headless browser (Debian's chromium and chromedriver, through Selenium) on a served DCR study.

The browser test uses :func:`chrome` and :func:`rate_set`; ``make assess-demo`` runs this module, which serves a
built study with ``assess.py serve``, lets a few simulated evaluators rate it in the browser, saves screenshots of
the page (desktop and phone width) and checks through the admin export that the server holds exactly the ratings
that were clicked::

    python -m tests.helpers.browser --study demo --evaluators 7 --sets 2 --screenshot /tmp/assess_page.png

A simulated evaluator rates by what it sees: the mean absolute difference of the two images as displayed (0-255),
5 - d/3 plus its own noise, rounded into 1-5; one careless evaluator always answers 5 (its attention checks fail).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
PHONE = (390, 844)  # a phone's CSS viewport (portrait)


def chromium_paths() -> tuple[str | None, str | None]:
    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    return browser, shutil.which("chromedriver")


def browser_missing() -> str | None:
    """Why no browser test can run here (None: it can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the assess extra: make install)"
    browser, driver = chromium_paths()
    if browser is None or driver is None:
        return "chromium or chromedriver is not installed (bash .ci/browser-install.sh installs both)"
    return None


@contextlib.contextmanager
def chrome(width: int = 1200, height: int = 900, mobile: bool = False) -> Iterator:
    """A headless chromium driven through the system's chromedriver (never a downloaded one); ``mobile``: a phone's
    viewport, pixel ratio and touch."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    if mobile:
        options.add_experimental_option("mobileEmulation", {
            "deviceMetrics": {"width": PHONE[0], "height": PHONE[1], "pixelRatio": 3.0, "touch": True},
            "userAgent": "Mozilla/5.0 (Linux; Android 14) Mobile"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _image(url: str) -> np.ndarray:
    import cv2

    with urllib.request.urlopen(url, timeout=10) as r:
        return cv2.imdecode(np.frombuffer(r.read(), np.uint8), cv2.IMREAD_COLOR).astype(np.float32)


def seen_difference(driver) -> float:
    """Mean absolute difference (0-255) of the two images on the page, fetched from their addresses."""
    from selenium.webdriver.common.by import By

    left, right = (driver.find_element(By.ID, side).get_attribute("src") for side in ("left", "right"))
    return float(np.abs(_image(left) - _image(right)).mean())


def observer(seed: int, careless: bool = False, noise: float = 0.5) -> Callable:
    """A simulated evaluator: rating = round(5 - d/3 + N(0, noise)) in 1-5 for a difference d; careless: 5."""
    rng = np.random.default_rng(seed)

    def choose(driver) -> int:
        if careless:
            return 5
        return int(np.clip(np.rint(5 - seen_difference(driver) / 3 + rng.normal(0, noise)), 1, 5))

    return choose


def _page(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").get_attribute("data-page")


def click_and_wait(driver, element_id: str) -> None:
    """Click the button ``element_id`` and wait until the page it leads to is shown (its ``data-page`` differs;
    errors while the browser swaps documents are retried)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    before = _page(driver)
    driver.find_element(By.ID, element_id).click()
    WebDriverWait(driver, 15, poll_frequency=0.05, ignored_exceptions=(WebDriverException,)).until(
        lambda d: _page(d) not in (before, None))


def rate_set(driver, page_url: str, choose: Callable, screenshot: Callable | None = None) -> list[tuple[str, int]]:
    """Rate every pair of the set on ``page_url`` by clicking the buttons ``choose(driver)`` picks; returns the
    (pair id, rating) clicked, in order. Stops at the page that shows the completion code."""
    from selenium.webdriver.common.by import By

    driver.get(page_url)
    clicked = []
    while driver.find_elements(By.NAME, "item"):
        item = driver.find_element(By.NAME, "item").get_attribute("value")
        if screenshot is not None and not clicked:
            screenshot(driver)
        rating = choose(driver)
        click_and_wait(driver, f"rate-{rating}")
        clicked.append((item, rating))
    if not driver.find_elements(By.ID, "code"):
        raise AssertionError(f"the set ended on a page without a completion code: {driver.page_source[:500]}")
    return clicked


def start_evaluator(driver, base_url: str) -> str:
    """Open the instructions, press Start; returns the evaluator's page address."""
    driver.get(base_url + "/")
    click_and_wait(driver, "start")
    return driver.current_url


def next_set(driver) -> bool:
    """On a set-done page, start another set if offered; returns whether one was."""
    from selenium.webdriver.common.by import By

    if not driver.find_elements(By.ID, "next"):
        return False
    click_and_wait(driver, "next")
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"assess.py serve exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        time.sleep(0.3)
    raise RuntimeError(f"the study server at {url} did not answer within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", required=True)
    parser.add_argument("--evaluators", type=int, default=7)
    parser.add_argument("--sets", type=int, default=2, help="K: sets per evaluator")
    parser.add_argument("--screenshot", default="/tmp/assess_page.png")
    parser.add_argument("--phone-screenshot", default="/tmp/assess_phone.png")
    parser.add_argument("--base-path", default="/dcr")
    args = parser.parse_args(argv)
    reason = browser_missing()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    port, token = free_port(), secrets.token_urlsafe(24)
    base = f"http://127.0.0.1:{port}{args.base_path}"
    server = subprocess.Popen([sys.executable, str(REPO / "assess.py"), "serve", f"study={args.study}",
                               f"server.port={port}", f"server.base_path={args.base_path}",
                               f"server.admin_token={token}", f"server.max_sets_per_evaluator={args.sets}"],
                              cwd=REPO, env={**os.environ})
    try:
        wait_healthy(base, server)
        clicked = []
        with chrome(mobile=True) as phone:  # the first evaluator rates on a phone
            shot = lambda d: d.save_screenshot(args.phone_screenshot)  # noqa: E731
            clicked += rate_set(phone, start_evaluator(phone, base), observer(0), shot)
        with chrome() as desktop:
            for k in range(1, args.evaluators):
                desktop.delete_all_cookies()
                page = start_evaluator(desktop, base)
                shot = (lambda d: d.save_screenshot(args.screenshot)) if k == 1 else None
                choose = observer(k, careless=k == args.evaluators - 1)
                clicked += rate_set(desktop, page, choose, shot)
                while next_set(desktop):
                    clicked += rate_set(desktop, desktop.current_url, choose)
        request = urllib.request.Request(base + "/admin/ratings.csv", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as r:
            rows = list(csv.DictReader(io.StringIO(r.read().decode())))
        if len(rows) != len(clicked):
            raise AssertionError(f"the server holds {len(rows)} ratings, the browser clicked {len(clicked)}")
        print(f"browser: {args.evaluators} evaluators rated {len(clicked)} pairs; the server holds exactly those; "
              f"screenshots: {args.screenshot}, {args.phone_screenshot}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
