"""The console driven by a real browser (Debian's chromium and chromium-driver, through Selenium)
against `lotline serve` on loopback: an admin signs in, a bad form is answered next to its field, a
user is added and disabled, and a site user typing the access page's address gets the 403 page.
Screenshots of each screen are kept in LOTLINE_SCREENSHOT_DIR when set (else the test's tmp dir)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ledger.application import Ledger
from ledger.identity import Identity
from ledger.values import Role
from scripts.db import upgrade_store
from tests.builders import BY_ADMIN, Program
from tests.builders import sscc as sscc_of
from tests.e2e.browser import PASSWORD, Screens
from tests.e2e.serving import lotline_serve


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Program, dict[str, str]]]:
    """`lotline serve` on a SQLite store holding a released program with a shipment in transit to the
    DE site, an admin, a site user, QA, a recall investigator, an inspector, a depot user, and API
    tokens of the inspector, QA and the site user (the last of the three)."""
    url = f"sqlite:///{tmp_path}/console.db"
    keys = tmp_path / "keys"
    upgrade_store(url, keys_dir=keys)
    ledger = Ledger.open(url, keys_dir=keys)
    identity = Identity.open(url, ledger=ledger, scrypt_n=2**10)
    try:
        program = Program.released(ledger)
        identity.add_user("admin1", name="Ada Admin", role=Role.ADMIN, password=PASSWORD, **BY_ADMIN)
        identity.add_user(
            "site1", name="Sam Site", role=Role.SITE, places=[program.site], password=PASSWORD, **BY_ADMIN
        )
        identity.add_user("insp1", name="Ines Inspector", role=Role.INSPECTOR, password=PASSWORD, **BY_ADMIN)
        identity.add_user(
            "recall1", name="Rita Recall", role=Role.RECALL_INVESTIGATOR, password=PASSWORD, **BY_ADMIN
        )
        identity.add_user("qa1", name="Quinn QA", role=Role.QA, password=PASSWORD, **BY_ADMIN)
        identity.add_user(
            "depot1", name="Dee Depot", role=Role.DEPOT, places=[program.depot], password=PASSWORD, **BY_ADMIN
        )
        tokens = {p: identity.issue_token(p, **BY_ADMIN) for p in ("insp1", "qa1", "site1")}
        program.ship(["K00001", "K00002", "K00003"], shipment_number="S-1")
    finally:
        identity.close()
        ledger.close()
    env = {**os.environ, "LOTLINE_DATABASE_URL": url, "LOTLINE_KEYS_DIR": str(keys)}
    for step in (["keys", "generate"], ["checkpoint", "make"]):  # a signed checkpoint to verify
        done = subprocess.run([sys.executable, "-m", "scripts.cli", *step], env=env,
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
    with lotline_serve(url, keys, tmp_path / "server.log") as base:
        yield base, program, tokens


def test_depot_site_and_qa_steps_in_a_real_browser(
    served: tuple[str, Program, dict[str, str]], browser: object, tmp_path: Path
) -> None:
    """A depot ships released kits; a site receives, dispenses, takes a kit back and reports an
    excursion; QA opens a recall as a signed step (a wrong password first); the site acknowledges it
    and reports a kit on its task list. Each step is recorded once; the screens are kept."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base, program, tokens = served
    s = Screens(browser, base, Path(os.environ.get("LOTLINE_SCREENSHOT_DIR") or tmp_path / "screens"))
    b, element, shot = s.b, s.element, s.shot

    def tick(*numbers: str) -> None:
        for n in numbers:
            b.find_element(By.CSS_SELECTOR, f"input[aria-label='{n}']").click()

    s.sign_in("depot1")
    element("ship-1").click()
    tick("K00004", "K00005")
    Select(element("to_id")).select_by_value(str(program.site))
    for field, value in (("shipment_number", "S-2"), ("sscc", "340000000000000029"), ("min_celsius", "2"),
                         ("max_celsius", "8"), ("logger_id", "LOG-9")):
        b.find_element(By.ID, field).send_keys(value)
    s.press("submit")
    assert "check digit" in element("error-sscc").text  # the ledger's GS1 rule, next to the field
    shot("ship-refused", at="error-sscc")
    sscc = b.find_element(By.ID, "sscc")
    sscc.clear()
    sscc.send_keys(sscc_of(2))
    s.press("submit")
    assert element("done").text == "Shipped 2 kit(s)."
    assert not b.find_elements(By.ID, "kit-K00004")  # on its way: no longer offered
    shot("ship")

    s.sign_in("site1")
    element("shipments-1").click()
    b.find_element(By.LINK_TEXT, "S-1").click()
    element("receipt-form")
    s.press("confirm")
    assert element("done").text == "The receipt is recorded."
    b.get(f"{base}/console/sites/{program.site}/kits/{program.kit('K00001')}")
    element("subject").send_keys("S-0042")
    s.press("dispense")
    assert element("done").text == "Dispensed to subject S-0042."
    Select(element("condition")).select_by_value("partially_used")
    shot("kit-dispensed", at="return-form")
    s.press("return")
    assert "return" in element("done").text
    assert "returned" in b.find_element(By.ID, "kit").text
    b.get(f"{base}/console/sites/{program.site}/kits")
    element("step-excursion").click()
    tick("K00002")
    for field, value in (("min_celsius", "2"), ("max_celsius", "14.5"), ("duration_minutes", "95")):
        b.find_element(By.ID, field).send_keys(value)
    shot("excursion-form", at="step-form")
    s.press("submit")
    assert "quarantined" in element("done").text

    s.sign_in("qa1")
    b.get(f"{base}/console/trace/lots/{program.api}")
    element("open-recall").click()
    element("recall_number").send_keys("RC-7")
    b.find_element(By.ID, "reason").send_keys("impurity above the limit in API-1")
    Select(b.find_element(By.ID, "classification")).select_by_value("class_ii")
    Select(b.find_element(By.ID, "scope")).select_by_value("all_kits")
    b.find_element(By.ID, "password").send_keys("not my password")
    s.press("open")
    assert "password is not right" in element("error-password").text
    assert element("meaning").text == "approved"
    shot("recall-sign-refused", at="signature")
    b.find_element(By.ID, "password").send_keys(PASSWORD)
    s.press("open")
    assert "Recall RC-7" in element("overall").find_element(By.XPATH, "..").text
    shot("recall-opened")

    s.sign_in("site1")
    element("site-recalls-1").click()
    b.find_element(By.LINK_TEXT, "RC-7").click()
    element("acknowledge")
    s.press("acknowledge")
    assert element("done").text == "The recall is acknowledged."
    outcome = b.find_element(By.CSS_SELECTOR, "select[aria-label='outcome of K00003']")
    Select(outcome).select_by_value("quarantined")
    s.press("report")
    assert element("done").text == "Reported 1 kit(s)."
    assert "quarantined" in element("task-K00003").text and "acknowledged" in b.page_source.lower()
    shot("site-recall-tasks")
    headers = {"Authorization": f"Bearer {tokens['insp1']}"}
    for event, times in (("Shipment.Shipped", 2), ("Recall.Opened", 1), ("Recall.Acknowledged", 1)):
        found = httpx.get(f"{base}/audit", params={"event": event}, headers=headers).json()["total"]
        assert found == times, event


def test_an_admin_manages_access_in_a_real_browser_and_a_site_user_is_refused(
    served: tuple[str, Program, dict[str, str]], browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import Select, WebDriverWait

    base, program, tokens = served
    inspector = tokens["insp1"]
    s = Screens(browser, base, Path(os.environ.get("LOTLINE_SCREENSHOT_DIR") or tmp_path / "screens"))
    b, element, shot, sign_in = s.b, s.element, s.shot, s.sign_in

    b.get(f"{base}/console")
    shot("sign-in")
    sign_in("admin1")
    assert "Welcome, Ada Admin" in b.page_source
    shot("home")
    b.get(f"{base}/console/users")
    # A password too short: answered next to its field, nothing recorded.
    b.find_element(By.ID, "principal").send_keys("nurse7")
    b.find_element(By.ID, "name").send_keys("Nia Nurse")
    Select(b.find_element(By.ID, "role")).select_by_value("site")
    Select(b.find_element(By.ID, "places")).select_by_value(str(program.site))
    b.find_element(By.ID, "password").send_keys("short")
    b.find_element(By.ID, "reason").send_keys("new study nurse, ACC-7")
    b.find_element(By.ID, "add").click()
    refusal = element("error-password")
    assert "at least 10 characters" in refusal.text
    b.execute_script("arguments[0].scrollIntoView({block: 'center'})", refusal)
    shot("add-user-refused")
    b.find_element(By.ID, "password").send_keys(PASSWORD)
    b.find_element(By.ID, "add").click()
    assert element("done").text == "Added nurse7."
    row = b.find_element(By.ID, "user-nurse7")
    assert "site" in row.text and "enabled" in row.text
    row.find_element(By.NAME, "reason").send_keys("left the site")
    row.find_element(By.NAME, "action").click()
    WebDriverWait(b, 15).until(shown.text_to_be_present_in_element((By.ID, "done"), "nurse7 disabled."))
    assert "disabled" in b.find_element(By.ID, "user-nurse7").text
    shot("users")
    # On the user's own page: unbinding the last place is refused, binding another is done.
    b.find_element(By.LINK_TEXT, "nurse7").click()
    Select(element("unbind-places")).select_by_value(str(program.site))
    b.find_element(By.ID, "unbind-reason").send_keys("moved")
    b.find_element(By.ID, "unbind").click()
    assert "would be bound to no place" in element("failed").text
    Select(element("bind-places")).select_by_value(str(program.fr_site))
    b.find_element(By.ID, "bind-reason").send_keys("covers Site 201 too")
    b.find_element(By.ID, "bind").click()
    assert element("done").text == "nurse7 is bound."
    assert "Site 201" in b.find_element(By.CLASS_NAME, "card").text
    shot("user")
    b.find_element(By.ID, "sign-out").click()
    element("sign-in")
    assert b.current_url.split("?")[0].endswith("/console/sign-in")

    sign_in("site1")
    assert "Users and access" not in b.find_element(By.TAG_NAME, "header").text  # not offered
    # The site confirms its receipt: one kit damaged, one missing, each with a remark; sent twice.
    element("shipments-1").click()
    b.find_element(By.LINK_TEXT, "S-1").click()
    element("receipt-form")
    b.find_element(By.CSS_SELECTOR, "input[aria-label='K00002 damaged']").click()
    b.find_element(By.CSS_SELECTOR, "input[aria-label='remark on K00002']").send_keys("box crushed")
    b.find_element(By.CSS_SELECTOR, "input[aria-label='K00003 missing']").click()
    b.find_element(By.CSS_SELECTOR, "input[aria-label='remark on K00003']").send_keys("not in the shipper")
    b.find_element(By.ID, "logger_min").send_keys("3.2")
    b.find_element(By.ID, "logger_max").send_keys("7.1")
    shot("receipt-form")
    twice = "const f = document.getElementById('receipt-form');"
    twice += " f.requestSubmit(); HTMLFormElement.prototype.submit.call(f);"
    b.execute_script(twice)
    assert element("done").text == "The receipt is recorded."
    assert "box crushed" in element("kit-K00002").text and "missing" in element("kit-K00003").text
    shot("receipt")

    def receipts() -> int:  # the read side answers once it has applied the receipt (a moment later)
        answer = httpx.get(
            f"{base}/audit",
            params={"event": "Shipment.ReceiptConfirmed"},
            headers={"Authorization": f"Bearer {inspector}"},
        )
        return int(answer.json()["total"])

    deadline = time.monotonic() + 10
    while receipts() == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)  # a second submission, had it recorded, would be there by now
    confirmed = {"total": receipts()}
    assert confirmed["total"] == 1  # pressed twice, recorded once
    # The kit list then shows the damaged and the missing kit, and a kit's history.
    b.get(f"{base}/console")
    element("kits-1").click()
    assert "damaged" in element("kit-K00002").text and "missing" in element("kit-K00003").text
    assert "received" in element("kit-K00001").text
    shot("kits")
    b.find_element(By.LINK_TEXT, "K00002").click()
    assert "received" in element("history").text and "shipped" in element("history").text
    shot("kit-history")
    b.get(f"{base}/console/sites/{program.fr_site}/kits")  # another site's kits, typed
    assert "not bound" in element("forbidden").text
    b.get(f"{base}/console/users")  # typed, not linked
    assert "may not read users" in element("forbidden").text
    shot("forbidden")
    b.get(f"{base}/console/trace/lots/{program.api}")  # traces are not a site's, typed or not
    assert "may not read traces" in element("forbidden").text
    b.find_element(By.ID, "sign-out").click()
    element("sign-in")

    # An investigator holding a kit number finds the kit, then traces its API lot forward.
    sign_in("recall1")
    element("find-link").click()
    element("q").send_keys("K00001")
    b.find_element(By.ID, "search").click()
    element("inputs")
    shot("trace-kit")
    b.find_element(By.ID, "lot-API-1").click()
    picture = element("picture")
    names = {n.get_attribute("id") for n in picture.find_elements(By.CSS_SELECTOR, "g.node")}
    rows = b.find_elements(By.CSS_SELECTOR, "#places tr[id^=place-]")
    # Every place of the table is in the picture: the depot and Site 101 (the shipment on its way there).
    assert len(rows) == len([n for n in names if n.startswith("place-")]) == 2
    for place in (program.depot, program.site):
        assert f"place-{place}" in names
    assert f"lot-{program.api}" in names and any(n.startswith("run-") for n in names)
    b.execute_script("arguments[0].scrollIntoView({block: 'start'})", picture)
    shot("trace-lot")

    # QA opens a recall of the API lot; the investigator's dashboard shows the site's report of a kit
    # within a few seconds, without reloading.
    def as_(principal: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[principal]}"}

    opened = httpx.post(f"{base}/recalls", headers=as_("qa1"), json={
        "recall_number": "RC-1", "lot_ids": [str(program.api)], "reason": "impurity above limit",
        "classification": "class_ii", "scope": "all_kits",
        "signature": {"meaning": "approved", "password": PASSWORD},
    })
    assert opened.status_code == 201, opened.text
    recall_id = opened.json()["id"]
    deadline = time.monotonic() + 10
    b.get(f"{base}/console/recalls")  # the list is a read model: listed once the worker applied it
    while not b.find_elements(By.LINK_TEXT, "RC-1") and time.monotonic() < deadline:
        time.sleep(0.3)
        b.get(f"{base}/console/recalls")
    b.find_element(By.LINK_TEXT, "RC-1").click()
    row = element(f"place-{program.site}")
    assert row.find_element(By.CSS_SELECTOR, "[data-k=reported]").text == "0"
    shot("recall-dashboard-before")
    reported = httpx.post(
        f"{base}/recalls/{recall_id}/sites/{program.site}/kits/{program.kit('K00001')}/report",
        headers=as_("site1"), json={"outcome": "quarantined"},
    )
    assert reported.status_code == 200, reported.text
    WebDriverWait(b, 10).until(shown.text_to_be_present_in_element(
        (By.CSS_SELECTOR, f"#place-{program.site} [data-k=reported]"), "1"))
    assert "Updated" in b.find_element(By.ID, "updated").text  # written by the page, not reloaded
    shot("recall-dashboard")
    b.find_element(By.ID, "sign-out").click()
    element("sign-in")

    # The inspector checks an event's proof in the browser (WebCrypto) against the log's key, which
    # they hold from elsewhere; a flipped byte in the path or in the note fails, naming what failed.
    sign_in("insp1")
    element("verify-link").click()
    vkey = httpx.get(f"{base}/inspector/log/vkey", headers=as_("insp1")).text.strip().splitlines()[0]
    element("vkey").send_keys(vkey)
    b.find_element(By.ID, "fetch").click()
    WebDriverWait(b, 10).until(
        lambda d: '"lotline-proof-bundle/1"' in d.find_element(By.ID, "bundle").get_attribute("value")
    )
    b.find_element(By.ID, "verify").click()
    passed = shown.text_to_be_present_in_element((By.ID, "result"), "Verified in this browser")
    try:
        WebDriverWait(b, 10).until(passed)
    except Exception:
        raise AssertionError(b.find_element(By.ID, "result").text + " | " + vkey) from None
    b.execute_script("arguments[0].scrollIntoView({block: 'center'})", b.find_element(By.ID, "result"))
    shot("verify-passed")

    def tamper(script: str) -> str:
        b.execute_script("var t = document.getElementById('bundle'); var x = JSON.parse(t.value);"
                         + script + " t.value = JSON.stringify(x, null, 1);")
        b.find_element(By.ID, "verify").click()
        WebDriverWait(b, 10).until(shown.text_to_be_present_in_element((By.ID, "result"), "FAILED"))
        return str(b.find_element(By.ID, "result").text)

    flip = "function flip(s, i) { return s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1); }"
    original = b.find_element(By.ID, "bundle").get_attribute("value")
    assert "inclusion proof fails" in tamper(flip + " x.path[0] = flip(x.path[0], 5);")
    b.execute_script("arguments[0].scrollIntoView({block: 'center'})", b.find_element(By.ID, "result"))
    shot("verify-failed")
    b.execute_script("document.getElementById('bundle').value = arguments[0];", original)
    note = flip + " var n = x.checkpoint.split('\\n'); n[2] = flip(n[2], 3); x.checkpoint = n.join('\\n');"
    assert "signature does not verify" in tamper(note)
    b.execute_script("document.getElementById('bundle').value = arguments[0];", original)
    assert "is not event" in tamper(flip + " x.event = x.event.replace('\"seq\":', '\"seq\":9');")

    # The log kept its history: a checkpoint the inspector saved earlier, against the newest one.
    saved = httpx.get(f"{base}/inspector/checkpoints", headers=as_("insp1")).json()["checkpoints"][-1]
    signed = httpx.post(f"{base}/inspector/checkpoints", headers=as_("qa1"))  # QA signs the head now
    assert signed.status_code == 200
    b.execute_script("document.getElementById('old-note').value = arguments[0];", saved["note"])
    b.find_element(By.ID, "fetch-consistency").click()
    WebDriverWait(b, 10).until(
        lambda d: '"new_size"' in d.find_element(By.ID, "consistency").get_attribute("value")
    )
    proof = b.find_element(By.ID, "consistency").get_attribute("value")
    assert f'"old_size": {saved["size"]}' in proof
    b.find_element(By.ID, "check-consistency").click()
    held = shown.text_to_be_present_in_element((By.ID, "consistency-result"), "Verified in this browser")
    WebDriverWait(b, 10).until(held)
    shot("verify-consistency", at="consistency-result")
    b.execute_script(
        flip + " var t = document.getElementById('consistency'); var x = JSON.parse(t.value);"
        " x.path[0] = flip(x.path[0], 7); t.value = JSON.stringify(x, null, 1);"
    )
    b.find_element(By.ID, "check-consistency").click()
    WebDriverWait(b, 10).until(shown.text_to_be_present_in_element((By.ID, "consistency-result"), "FAILED"))
    assert "consistency proof fails" in b.find_element(By.ID, "consistency-result").text
    # The server's own verification, on demand; the checkpoints with their cosigners.
    b.get(f"{base}/console/verify")
    assert element(f"checkpoint-{saved['size']}")
    s.press("run")
    assert element("verdict").text == "Passed"
    shot("verify-server", at="report")
