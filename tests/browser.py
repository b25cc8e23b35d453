"""Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) through selenium, for screenshots in tests.

Fails, saying what to install, when the browser is absent. Never downloads a driver: the Debian
chromedriver is given by path, so Selenium Manager stays offline.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = ("chromedriver",)


def _which(names: tuple[str, ...]) -> str | None:
    return next((path for name in names if (path := shutil.which(name))), None)


def start_chromium(width: int = 1400, height: int = 1000) -> object:
    """A selenium ``webdriver.Chrome`` on headless Chromium (quit it when done); fails, saying what to
    install, when the browser or its driver is missing (``.ci/run`` installs both)."""
    from selenium import webdriver

    browser, driver_path = _which(CHROMIUM), _which(CHROMEDRIVER)
    if browser is None or driver_path is None:
        pytest.fail("headless Chromium needs `apt-get install -y chromium chromium-driver` (.ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))


@contextmanager
def headless_chromium(width: int = 1400, height: int = 1000) -> Iterator[object]:
    """`start_chromium` as a context manager: the browser quits on exit."""
    driver = start_chromium(width, height)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: object, url: str, path: Path, *, wait_for_text: str | None = None,
               timeout: float = 60.0) -> str:
    """Open ``url``, wait until the page shows ``wait_for_text`` (if given), save a PNG; returns its text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    body = ""

    def shows(d: object) -> bool:
        nonlocal body
        body = d.find_element(By.TAG_NAME, "body").text
        return wait_for_text is None or wait_for_text in body

    WebDriverWait(driver, timeout, poll_frequency=1.0).until(shows)
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return body
