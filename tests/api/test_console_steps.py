"""The console's steps on kits for sites and depots, through the app on both stores: ship from a depot,
dispense and returns at a site, a storage excursion, sending back and receiving returns, destruction,
and a site's recall task list. Each step is the ledger's command, recorded once per form however often
it is sent; bad input is shown next to its field and records nothing; a place not one's own is 403."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from ledger.domain import Kit, KitStatus
from tests.api.conftest import PASSWORD, Api
from tests.api.test_console import sign_in
from tests.api.test_destruction_custody import authorise
from tests.builders import Program, sscc


def form_of(page: str, form_id: str, **values: Any) -> dict[str, Any]:
    """The hidden fields (CSRF, form key) of form `form_id` on `page`, and `values`."""
    found = re.search(rf'<form[^>]*id="{form_id}".*?</form>', page, re.S)
    assert found is not None, f"no form {form_id}"
    hidden = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', found.group(0)))
    return {**hidden, **values}


def kits_of(api: Api, *events: str) -> int:
    return sum(api.get("insp1", "/audit", params={"event": e}).json()["total"] for e in events)


def test_a_depot_ships_released_kits_once_with_bad_input_next_to_its_field(
    api: Api, program: Program
) -> None:
    sign_in(api, "depot1")
    home = api.client.get("/console")
    assert f"/console/sites/{program.depot}/steps/ship" in home.text
    path = f"/console/sites/{program.depot}/steps/ship"
    page = api.client.get(path)
    assert page.status_code == 200 and re.findall(r'<tr id="kit-(K\d+)">', page.text)[:3] == [
        "K00001",
        "K00002",
        "K00003",
    ]
    kits = [str(k) for k in program.kits("K00001", "K00002")]
    form = form_of(
        page.text,
        "step-form",
        kit=kits,
        to_id=str(program.site),
        shipment_number="S-9",
        sscc="340000000000000001",  # wrong check digit
        min_celsius="2",
        max_celsius="8",
    )
    head = api.head()
    missing = api.client.post(path, data={**form, "shipment_number": ""})
    assert missing.status_code == 422 and 'id="error-shipment_number"' in missing.text
    bad = api.client.post(path, data=form)
    assert bad.status_code == 422 and 'id="error-sscc"' in bad.text, bad.text
    none = api.client.post(path, data={**form, "kit": []})
    assert none.status_code == 422 and "Choose at least one kit" in none.text
    assert api.head() == head  # nothing recorded
    form["sscc"] = sscc(9)
    first = api.client.post(path, data=form)
    again = api.client.post(path, data=form)  # pressed twice, or resent by the network
    assert first.status_code == again.status_code == 200 and "Shipped 2 kit(s)." in again.text
    assert kits_of(api, "Shipment.Shipped") == 1
    assert not re.search(r'<tr id="kit-K0000[12]">', again.text)  # no longer offered: on their way
    assert api.client.get(f"/console/sites/{program.depot}/steps/dispense").status_code == 404
    elsewhere = f"/console/sites/{program.site}/steps/excursion"  # a site's step: the ledger refuses
    tried = api.client.post(
        elsewhere,
        data=form_of(
            api.client.get(elsewhere).text,
            "step-form",
            kit=kits,
            min_celsius="1",
            max_celsius="30",
            duration_minutes="5",
        ),
    )
    assert tried.status_code == 403 and kits_of(api, "Kit.Quarantined") == 0


def test_a_site_dispenses_takes_back_reports_an_excursion_and_sends_kits_back(
    api: Api, program: Program
) -> None:
    program.at_site(["K00001", "K00002", "K00003", "K00004"])
    api.settle()
    sign_in(api, "site1")
    kit = program.kit("K00001")
    page = api.client.get(f"/console/sites/{program.site}/kits/{kit}")
    assert 'id="dispense-form"' in page.text and 'id="return-form"' not in page.text
    head = api.head()
    blank = api.client.post(
        f"/console/sites/{program.site}/kits/{kit}/dispense",
        data=form_of(page.text, "dispense-form", subject=""),
    )
    assert blank.status_code == 422 and 'id="error-dispense"' in blank.text and api.head() == head
    dispensed = api.client.post(
        f"/console/sites/{program.site}/kits/{kit}/dispense",
        data=form_of(page.text, "dispense-form", subject="S-0042"),
    )
    assert dispensed.status_code == 200 and "Dispensed to subject S-0042." in dispensed.text
    assert 'id="return-form"' in dispensed.text and 'id="dispense-form"' not in dispensed.text
    returned = api.client.post(
        f"/console/sites/{program.site}/kits/{kit}/return",
        data=form_of(dispensed.text, "return-form", condition="partially_used"),
    )
    assert returned.status_code == 200 and "partially_used" in returned.text
    assert api.ledger.get(Kit, kit).status == KitStatus.RETURNED

    path = f"/console/sites/{program.site}/steps/excursion"
    page = api.client.get(path)
    form = form_of(
        page.text,
        "step-form",
        kit=[str(program.kit("K00002"))],
        min_celsius="2",
        max_celsius="14",
        duration_minutes="0",
    )
    head = api.head()
    short = api.client.post(path, data=form)
    assert short.status_code == 422 and 'id="error-duration_minutes"' in short.text and api.head() == head
    reported = api.client.post(path, data={**form, "duration_minutes": "90"})
    assert reported.status_code == 200 and "they are quarantined" in reported.text
    assert api.ledger.get(Kit, program.kit("K00002")).status == KitStatus.QUARANTINED

    path = f"/console/sites/{program.site}/steps/send-back"
    page = api.client.get(path)
    offered = re.findall(r'<tr id="kit-(K\d+)">', page.text)
    assert offered == ["K00003", "K00004", "K00001"] or sorted(offered) == ["K00001", "K00003", "K00004"]
    form = form_of(
        page.text, "step-form", kit=[str(program.kit("K00003"))], depot_id=str(program.depot), reason=""
    )
    no_reason = api.client.post(path, data=form)
    assert no_reason.status_code == 422 and 'id="error-reason"' in no_reason.text
    sent = api.client.post(path, data={**form, "reason": "stock no longer needed"})
    assert sent.status_code == 200 and "Sent 1 kit(s) back." in sent.text
    assert api.ledger.get(Kit, program.kit("K00003")).status == KitStatus.IN_TRANSIT

    # The depot receives it; a kit not sent back to it is refused, naming it, and nothing is recorded.
    sign_in(api, "depot1")
    path = f"/console/sites/{program.depot}/steps/returns"
    page = api.client.get(path)
    assert re.findall(r'<tr id="kit-(K\d+)">', page.text) == ["K00003"]
    head = api.head()
    wrong = api.client.post(path, data=form_of(page.text, "step-form", kit=[str(program.kit("K00004"))]))
    assert wrong.status_code == 422 and "K00004" in wrong.text and api.head() == head
    got = api.client.post(path, data=form_of(page.text, "step-form", kit=[str(program.kit("K00003"))]))
    assert got.status_code == 200 and "Received 1 returned kit(s)." in got.text
    assert api.ledger.get(Kit, program.kit("K00003")).status == KitStatus.RETURNED


def test_kits_whose_destruction_qa_authorised_are_destroyed_with_the_certificate(
    api: Api, program: Program
) -> None:
    authorise(api, program, "K00005", "K00006")
    api.settle()
    sign_in(api, "depot1")
    path = f"/console/sites/{program.depot}/steps/destruction"
    page = api.client.get(path)
    assert re.findall(r'<tr id="kit-(K\d+)">', page.text) == ["K00005", "K00006"]
    form = form_of(
        page.text, "step-form", kit=[str(k) for k in program.kits("K00005", "K00006")], method="incineration"
    )
    head = api.head()
    assert 'id="error-certificate"' in api.client.post(path, data=form).text and api.head() == head
    done = api.client.post(path, data={**form, "certificate": "DC-77"})
    assert done.status_code == 200 and "Destroyed 2 kit(s)." in done.text and 'id="no-kits"' in done.text
    assert 'id="submit"' not in done.text  # nothing left to destroy: no button to press
    assert api.ledger.get(Kit, program.kit("K00006")).status == KitStatus.DESTROYED


def test_a_site_acknowledges_a_recall_and_reports_its_kits_on_its_task_list(
    api: Api, program: Program
) -> None:
    program.at_site(["K00001", "K00002"])
    recall = program.open_recall()
    api.settle()
    sign_in(api, "site1")
    listed = api.client.get(f"/console/sites/{program.site}/recalls")
    assert listed.status_code == 200 and 'id="recall-RC-1"' in listed.text and "not yet" in listed.text
    path = f"/console/sites/{program.site}/recalls/{recall}"
    page = api.client.get(path)
    assert page.status_code == 200 and re.findall(r'<tr id="task-(K\d+)">', page.text) == ["K00001", "K00002"]
    ack = form_of(page.text, "acknowledge-form")
    assert api.client.post(f"{path}/acknowledgement", data=ack).status_code == 200
    again = api.client.post(f"{path}/acknowledgement", data=ack)  # pressed twice: the first answer
    assert again.status_code == 200 and 'id="acknowledged"' in again.text
    assert kits_of(api, "Recall.Acknowledged") == 1

    report = form_of(again.text, "report-form")
    head = api.head()
    nothing = api.client.post(f"{path}/report", data=report)
    assert nothing.status_code == 422 and 'id="error-kits"' in nothing.text and api.head() == head
    k1, k2 = (str(k) for k in program.kits("K00001", "K00002"))
    no_subject = api.client.post(f"{path}/report", data={**report, f"outcome-{k1}": "dispensed"})
    assert no_subject.status_code == 422 and "K00001" in no_subject.text and api.head() == head
    done = api.client.post(
        f"{path}/report",
        data={**report, f"outcome-{k1}": "quarantined", f"outcome-{k2}": "returned"},
    )
    assert done.status_code == 200 and "Reported 2 kit(s)." in done.text, re.findall(
        r"error-kits.{0,300}", done.text
    )
    rows = dict(re.findall(r'<tr id="task-(K\d+)">(.*?)</tr>', done.text, re.S))
    assert "quarantined" in rows["K00001"] and "returned" in rows["K00002"] and "not yet" not in done.text

    sign_in(api, "site2")  # another site's user, typing the address
    assert api.client.get(path).status_code == 403
    assert api.client.get(f"/console/sites/{program.site}/recalls").status_code == 403
    assert UUID(str(recall))


def test_qa_opens_a_recall_signed_with_the_password_again_and_the_meaning_shown(
    api: Api, program: Program
) -> None:
    program.at_site(["K00001"])
    api.settle()
    sign_in(api, "qa1")
    trace = api.client.get(f"/console/trace/lots/{program.api}")
    assert f'href="/console/recalls/new/{program.api}"' in trace.text
    path = f"/console/recalls/new/{program.api}"
    page = api.client.get(path)
    assert page.status_code == 200 and 'id="meaning">approved<' in page.text and "Quinn QA" in page.text
    form = form_of(
        page.text,
        "recall-form",
        recall_number="RC-9",
        reason="out-of-specification impurity",
        classification="class_ii",
        scope="all_kits",
        password="not my password",
    )
    head = api.head()
    wrong = api.client.post(path, data=form)
    assert wrong.status_code == 422 and 'id="error-password"' in wrong.text and api.head() == head
    unsigned = api.client.post(path, data={**form, "password": ""})
    assert unsigned.status_code == 422 and 'id="error-password"' in unsigned.text
    no_class = api.client.post(path, data={**form, "classification": "", "password": PASSWORD})
    assert no_class.status_code == 422 and 'id="error-classification"' in no_class.text and api.head() == head
    form["password"] = PASSWORD
    first = api.client.post(path, data=form)
    again = api.client.post(path, data=form)  # pressed twice: the same recall, once
    assert first.status_code == again.status_code == 200 and "Recall RC-9" in again.text
    opened = api.get("insp1", "/audit", params={"event": "Recall.Opened"}).json()
    assert opened["total"] == 1
    (entry,) = opened["entries"]
    signature = entry["changes"]["signature"]
    assert signature["meaning"] == "approved" and signature["signer"] == "qa1", entry

    sign_in(api, "recall1")  # reads recalls, may not open one: the ledger's rule, a 403 page
    page = api.client.get(path)
    tried = api.client.post(
        path,
        data={
            **form_of(page.text, "recall-form"),
            **{k: v for k, v in form.items() if k not in ("csrf", "form_key")},
            "recall_number": "RC-10",
        },
    )
    assert (
        tried.status_code == 403
        and api.get("insp1", "/audit", params={"event": "Recall.Opened"}).json()["total"] == 1
    )
    sign_in(api, "site1")
    assert api.client.get(path).status_code == 403


def test_qa_releases_quarantined_kits_and_authorises_destruction_as_signed_steps(
    api: Api, program: Program
) -> None:
    program.at_site(["K00001", "K00002"])
    api.settle()
    sign_in(api, "site1")
    path = f"/console/sites/{program.site}/steps/excursion"
    page = api.client.get(path)
    assert "quarantine-release" not in page.text  # QA's steps are not offered to a site
    kits = [str(k) for k in program.kits("K00001", "K00002")]
    form = form_of(page.text, "step-form", kit=kits, min_celsius="2", max_celsius="15", duration_minutes="30")
    assert api.client.post(path, data=form).status_code == 200

    sign_in(api, "qa1")
    listed = api.client.get("/console/places")
    assert f'id="place-{program.site}"' in listed.text
    stock = api.client.get(f"/console/sites/{program.site}/kits")
    assert 'id="step-quarantine-release"' in stock.text and 'id="step-excursion"' not in stock.text
    path = f"/console/sites/{program.site}/steps/quarantine-release"
    page = api.client.get(path)
    assert 'id="meaning">released<' in page.text and re.findall(r'<tr id="kit-(K\d+)">', page.text) == [
        "K00001",
        "K00002",
    ]
    form = form_of(
        page.text, "step-form", kit=kits[:1], reason="stability data cover 15 °C for 30 min", password="wrong"
    )
    head = api.head()
    wrong = api.client.post(path, data=form)
    assert wrong.status_code == 422 and 'id="error-password"' in wrong.text and api.head() == head
    released = api.client.post(path, data={**form, "password": PASSWORD})
    assert released.status_code == 200 and "Released 1 kit(s) from quarantine." in released.text
    assert api.ledger.get(Kit, program.kit("K00001")).status == KitStatus.RECEIVED

    path = f"/console/sites/{program.site}/steps/destruction-authorisation"
    page = api.client.get(path)
    assert 'id="meaning">authorised_destruction<' in page.text
    form = form_of(page.text, "step-form", kit=kits[1:], reason="excursion beyond the stability data")
    authorised = api.client.post(path, data={**form, "password": PASSWORD})
    assert authorised.status_code == 200 and "Authorised the destruction of 1 kit(s)." in authorised.text
    kit = api.ledger.get(Kit, program.kit("K00002"))
    assert kit.status == KitStatus.PENDING_DESTRUCTION
    trail = api.get("insp1", f"/audit/{program.kit('K00002')}").json()["entries"]["items"]
    assert trail[-1]["meaning"] == "authorised_destruction" and trail[-1]["principal"] == "qa1"

    sign_in(api, "site1")  # the site may not sign QA's step, even by sending the form itself
    tried = api.client.post(
        f"/console/sites/{program.site}/steps/quarantine-release",
        data={
            **form_of(api.client.get(path).text, "step-form"),
            "kit": kits[1:],
            "reason": "r",
            "password": PASSWORD,
        },
    )
    assert (
        tried.status_code == 403
        and api.ledger.get(Kit, program.kit("K00002")).status == KitStatus.PENDING_DESTRUCTION
    )


def test_a_depot_lists_the_shipments_that_left_it_in_the_console_and_over_the_api(
    api: Api, program: Program
) -> None:
    program.ship(["K00001", "K00002"], shipment_number="S-1", serial=1)
    program.at_site(["K00003"], shipment_number="S-2", serial=2)
    program.ship(["K00004"], shipment_number="S-3", serial=3)
    api.settle()
    answer = api.get("depot1", f"/locations/{program.depot}/shipments").json()
    assert [s["shipment_number"] for s in answer["shipments"]] == ["S-3", "S-2", "S-1"]
    assert [s["kits"] for s in answer["shipments"]] == [1, 1, 2] and answer["total"] == 3
    assert {s["to_place"]["name"] for s in answer["shipments"]} == {"Site 101"}
    received = api.get(
        "depot1", f"/locations/{program.depot}/shipments", params={"status": "received"}
    ).json()
    assert [s["shipment_number"] for s in received["shipments"]] == ["S-2"]
    paged = api.get(
        "depot1", f"/locations/{program.depot}/shipments", params={"limit": 1, "offset": 1}
    ).json()
    assert [s["shipment_number"] for s in paged["shipments"]] == ["S-2"] and paged["total"] == 3
    assert api.get("site1", f"/locations/{program.depot}/shipments").status_code == 403  # not their place
    assert (
        api.get("depot1", f"/locations/{program.depot}/shipments", params={"status": "lost"}).status_code
        == 422
    )

    sign_in(api, "depot1")
    page = api.client.get(f"/console/sites/{program.depot}/outbound")
    assert re.findall(r'<tr id="shipment-(S-\d)">', page.text) == ["S-3", "S-2", "S-1"]
    assert "Site 101" in page.text and "received" in page.text and 'id="new-shipment"' in page.text
    sign_in(api, "site1")
    assert api.client.get(f"/console/sites/{program.depot}/outbound").status_code == 403


def test_a_long_task_list_and_a_long_step_form_say_how_many_kits_qualify(
    api: Api, program: Program, monkeypatch: Any
) -> None:
    from api.console import recalls, stock

    program.at_site(["K00001", "K00002", "K00003"])
    recall = program.open_recall()
    api.settle()
    monkeypatch.setattr(recalls, "TASKS_PER_PAGE", 2)
    monkeypatch.setattr(stock, "OFFERED", 2)
    sign_in(api, "site1")
    path = f"/console/sites/{program.site}/recalls/{recall}"
    first = api.client.get(path)
    assert re.findall(r'<tr id="task-(K\d+)">', first.text) == ["K00001", "K00002"]
    assert (
        "(3, 3 not reported yet; page 1 of 2, by kit number)" in first.text and 'id="next-page"' in first.text
    )
    second = api.client.get(path, params={"page": "2"})
    assert re.findall(r'<tr id="task-(K\d+)">', second.text) == ["K00003"]
    assert re.findall(r'<tr id="task-(K\d+)">', api.client.get(path, params={"page": "x"}).text) == [
        "K00001",
        "K00002",
    ]
    sign_in(api, "depot1")
    form = api.client.get(f"/console/sites/{program.depot}/steps/destruction-authorisation")
    assert form.status_code == 200  # QA's step, shown to a depot user by address; the ledger refuses it
    ship = api.client.get(f"/console/sites/{program.depot}/steps/ship")
    assert "Kits (7 available here; the first 2 by kit number of each status)" in ship.text
    assert len(re.findall(r'<tr id="kit-(K\d+)">', ship.text)) == 2


def test_a_sites_shipments_filter_by_status_a_page_at_a_time(
    api: Api, program: Program, monkeypatch: Any
) -> None:
    from api.console import sites

    program.at_site(["K00001"], shipment_number="S-1", serial=1)
    program.ship(["K00002"], shipment_number="S-2", serial=2)
    program.ship(["K00003"], shipment_number="S-3", serial=3)
    api.settle()
    monkeypatch.setattr(sites, "SHIPMENTS_PER_PAGE", 1)
    sign_in(api, "site1")
    path = f"/console/sites/{program.site}/shipments"
    listed = api.client.get(path)
    assert (
        re.findall(r'<tr id="shipment-(S-\d)">', listed.text) == ["S-3"]
        and "3 shipments, page 1 of 3" in listed.text
    )
    moving = api.client.get(path, params={"status": "in_transit", "page": "2"})
    assert (
        re.findall(r'<tr id="shipment-(S-\d)">', moving.text) == ["S-2"]
        and "2 shipments in transit" in moving.text
    )
    arrived = api.client.get(path, params={"status": "received"})
    assert re.findall(r'<tr id="shipment-(S-\d)">', arrived.text) == ["S-1"]
    unknown = api.client.get(path, params={"status": "lost", "page": "x"})  # ignored: all, page 1
    assert re.findall(r'<tr id="shipment-(S-\d)">', unknown.text) == ["S-3"]
