"""Every console screen, on the demo program (`lotline demo`, as the README's first command makes it),
driven by a real browser as the demo's own users with the passwords the demo printed: each screen
shows the demo's data (rows, the genealogy picture, the live recall, the verification), and its
screenshot is kept (`demo-*.png` in LOTLINE_SCREENSHOT_DIR when set) to be looked at."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.browser import Screens
from tests.e2e.serving import lotline_serve

SCALE = "0.25"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`lotline serve` on a fresh demo store; the demo users' passwords, as the demo printed them."""
    url, keys = f"sqlite:///{tmp_path}/demo.db", tmp_path / "keys"
    env = {**os.environ, "LOTLINE_DATABASE_URL": url, "LOTLINE_KEYS_DIR": str(keys)}
    made = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "demo", "--scale", SCALE, "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    passwords = dict(re.findall(r"^\s+(\w+)\s+\w+\s+token \S+\s+password (\S+)$", made.stdout, re.M))
    assert {"site", "depot", "qa", "recall_investigator", "inspector", "admin"} <= set(passwords)
    with lotline_serve(url, keys, tmp_path / "server.log") as base:
        yield base, passwords


def test_every_screen_on_the_demo_program(
    demo: tuple[str, dict[str, str]], browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    base, passwords = demo
    s = Screens(browser, base, Path(os.environ.get("LOTLINE_SCREENSHOT_DIR") or tmp_path / "screens"), "demo")
    b, element, shot = s.b, s.element, s.shot

    def rows(table: str) -> list[object]:
        return list(element(table).find_elements(By.CSS_SELECTOR, "tr[id]"))

    # A site: its shipments, one shipment, its kits with their flags, a kit's history, its recalls.
    s.sign_in("site", passwords["site"])
    shot("site-home")
    element("shipments-1").click()
    assert rows("shipments"), "the demo shipped to the site"
    shot("site-shipments")
    rows("shipments")[0].find_element(By.TAG_NAME, "a").click()  # type: ignore[attr-defined]
    element("receipt-form" if b.find_elements(By.ID, "receipt-form") else "receipt")
    shot("site-shipment")
    b.back()
    b.back()
    element("kits-1").click()
    kits = rows("kits")
    assert kits
    shot("site-kits")
    kits[0].find_element(By.TAG_NAME, "a").click()  # type: ignore[attr-defined]
    assert rows("history")
    shot("site-kit")
    b.get(f"{base}/console")
    element("site-recalls-1").click()
    element("site-recalls")
    shot("site-recalls")
    if b.find_elements(By.CSS_SELECTOR, "#site-recalls tr[id] a"):
        b.find_element(By.CSS_SELECTOR, "#site-recalls tr[id] a").click()
        assert rows("tasks")
        shot("site-recall-tasks")
    b.get(f"{base}/console")
    element("kits-1").click()
    element("step-excursion").click()
    element("step-form")
    shot("site-excursion")

    # A depot: its stock, and the steps on it.
    s.sign_in("depot", passwords["depot"])
    stocks = [a.get_attribute("href") for a in b.find_elements(By.CSS_SELECTOR, "a[id^=kits-]")]

    def available(stock: str) -> int:
        b.get(f"{stock}?status=available")
        return int(element("count").text.split()[0])

    depot = max(stocks, key=available).removesuffix("/kits")  # the depot that ships (the other: back-up)
    b.get(f"{depot}/kits")
    assert rows("kits"), "the demo's depot holds kits"
    shot("depot-stock")
    for step in ("ship", "returns", "destruction"):
        b.get(f"{depot}/steps/{step}")
        element("step-form")
        shot(f"depot-{step}")

    # QA: the recalls, the demo's recall live, its lot traced forward with the picture, a new recall.
    s.sign_in("qa", passwords["qa"])
    element("recalls-link").click()
    recalls = rows("recalls")
    assert recalls, "the demo ends with a recall in progress"
    shot("qa-recalls")
    recalls[0].find_element(By.TAG_NAME, "a").click()  # type: ignore[attr-defined]
    assert rows("places") and element("updated")
    shot("qa-recall-dashboard")
    lot = re.search(r"Lots: ([^,.<]+)", b.page_source)
    assert lot is not None
    b.get(f"{base}/console/find?q={lot.group(1).strip()}")
    picture = element("picture")
    assert picture.find_elements(By.CSS_SELECTOR, "g.node")
    b.execute_script("arguments[0].scrollIntoView({block: 'start'})", picture)
    shot("qa-trace-lot")
    element("open-recall").click()
    element("signature")
    shot("qa-new-recall")
    b.get(f"{base}/console")
    element("places-link").click()
    places = [
        a.get_attribute("href") for a in b.find_elements(By.CSS_SELECTOR, "#places tr[id] td:first-child a")
    ]
    assert places
    shot("qa-places")
    for place in places:  # a place holding quarantined kits (the demo's excursions and recall)
        b.get(place.removesuffix("/kits") + "/steps/quarantine-release")
        if rows("step-form"):
            break
    assert rows("step-form") and element("meaning").text == "released"
    shot("qa-quarantine-release", at="signature")

    # A recall investigator: the report; an inspector: the server's verification; an admin: users.
    s.sign_in("recall_investigator", passwords["recall_investigator"])
    element("recalls-link").click()
    rows("recalls")[0].find_element(By.TAG_NAME, "a").click()  # type: ignore[attr-defined]
    b.find_element(By.LINK_TEXT, "Report").click()
    assert "Outstanding kits, by place" in b.page_source
    shot("investigator-report")
    s.sign_in("inspector", passwords["inspector"])
    element("verify-link").click()
    assert rows("checkpoints"), "the demo signs a checkpoint"
    s.press("run")
    assert element("verdict").text == "Passed"
    shot("inspector-verify", at="report")
    s.sign_in("admin", passwords["admin"])
    b.get(f"{base}/console/users")
    assert len(rows("users")) >= 9
    shot("admin-users")
