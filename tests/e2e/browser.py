"""A real browser for the console's tests: Debian's chromium and chromium-driver through Selenium
(`browser`, a fixture in conftest.py), and `Screens`, what a test does with it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PASSWORD = "a long enough password"
"""The password the browser tests give their users."""


def _browser_binaries() -> tuple[str, str] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def chromium() -> Iterator[object]:
    found = _browser_binaries()
    if found is None:
        message = "no chromium and chromedriver (Debian: apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; the test command installs them", pytrace=False)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class Screens:
    """A browser on the served console: wait for an element, keep a screenshot, sign in."""

    def __init__(self, browser: object, base: str, shots: Path, prefix: str = "console") -> None:
        from selenium.webdriver.remote.webdriver import WebDriver

        assert isinstance(browser, WebDriver)
        self.b, self.base, self.shots, self.prefix = browser, base, shots, prefix
        shots.mkdir(parents=True, exist_ok=True)

    def element(self, ident: str) -> Any:
        """The element `ident` once the page that has it has loaded (a form's answer is a new page)."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as shown
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.b, 15).until(shown.presence_of_element_located((By.ID, ident)))

    def press(self, ident: str) -> None:
        """Press a form's button and wait for the page it answers with."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        # The page the button is on must have finished loading: a click on a page still being built
        # can reach a node the finished document no longer has (a flaky failure on a loaded machine).
        loaded = 'return document.readyState === "complete"'
        WebDriverWait(self.b, 15).until(lambda b: b.execute_script(loaded))
        page = self.b.find_element(By.TAG_NAME, "html")
        self.b.find_element(By.ID, ident).click()
        WebDriverWait(self.b, 15).until(lambda _: _replaced(page))

    def shot(self, name: str, at: str | None = None) -> None:
        if at is not None:
            self.b.execute_script("arguments[0].scrollIntoView({block: 'center'})", self.element(at))
        path = self.shots / f"{self.prefix}-{name}.png"
        self.b.save_screenshot(str(path))
        assert path.stat().st_size > 5000, name

    def sign_in(self, principal: str, password: str = PASSWORD) -> None:
        from selenium.webdriver.common.by import By

        self.b.delete_all_cookies()
        self.b.get(f"{self.base}/console")
        assert self.b.current_url.endswith("/console/sign-in")
        self.b.find_element(By.ID, "principal").send_keys(principal)
        self.b.find_element(By.ID, "password").send_keys(password)
        self.b.find_element(By.ID, "sign-in").click()
        self.element("sign-out")


def _replaced(page: Any) -> bool:
    """Whether the old page's root is gone: `staleness_of`, which knows only the stale-element error,
    where Chrome 156 may answer "Node with given id does not belong to the document" for the same."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        page.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as e:
        if "does not belong to the document" in (e.msg or ""):
            return True
        raise
    return False

