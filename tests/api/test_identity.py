"""Users and tokens: secrets are stored only as hashes, `lotline users` manages them, and the
chain link lookup the API answers commands with (`ChainReader.links_for`) finds each event."""

from __future__ import annotations

import io
import sys
import time
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select, text

from ledger.application import Ledger
from ledger.errors import AlreadyExists, InvalidInput
from ledger.identity import Identity, InvalidCredentials, passwords, token_hash, tokens
from ledger.values import Role
from scripts.cli import main
from tests.builders import BY_ADMIN, DEPOT_GLN, Program


def test_tokens_and_passwords_are_stored_hashed_and_checked(database_url: str) -> None:
    identity = Identity.open(database_url, scrypt_n=2**10)
    try:
        identity.add_user("qa1", name="Quinn QA", role=Role.QA, password="a long enough password", **BY_ADMIN)
        token = identity.issue_token("qa1", **BY_ADMIN)
        with identity.engine.connect() as conn:
            stored_tokens = [tuple(r) for r in conn.execute(select(tokens))]
            stored_passwords = [tuple(r) for r in conn.execute(select(passwords))]
            stored_events = [tuple(r) for r in conn.execute(text("SELECT * FROM lotline_events"))]
        assert token not in repr(stored_tokens) and token_hash(token) in repr(stored_tokens)
        assert "a long enough password" not in repr(stored_passwords)
        assert "scrypt$1024$8$1$" in repr(stored_passwords)
        for secret in (token, token_hash(token), stored_passwords[0][2], "a long enough password"):
            assert secret not in repr(stored_events)  # the chain has the token's public id, no secret
        assert identity.authenticate(token).user.role == Role.QA
        assert identity.verify_password("qa1", "a long enough password").principal == "qa1"
        with pytest.raises(InvalidCredentials):
            identity.verify_password("qa1", "a long enough passworD")
        with pytest.raises(AlreadyExists):
            identity.add_user("qa1", name="Again", role=Role.QA, **BY_ADMIN)
        for role in (Role.SITE, Role.DEPOT, Role.MANUFACTURING):
            with pytest.raises(InvalidInput, match=f"a {role} user is bound to at least one place"):
                identity.add_user("nowhere9", name="Nowhere", role=role, **BY_ADMIN)
        with pytest.raises(InvalidInput, match="a qa user acts everywhere"):
            identity.add_user("qa8", name="Bound QA", role=Role.QA, places=[UUID(int=1)], **BY_ADMIN)
        with pytest.raises(InvalidInput, match="at least 10"):
            identity.add_user("qa9", name="Short", role=Role.QA, password="short", **BY_ADMIN)
    finally:
        identity.close()


def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str, stdin: str = ""
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_lotline_users_adds_binds_lists_issues_and_disables(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = Ledger.open(database_url)
    try:
        program = Program(ledger).reference()
    finally:
        ledger.close()
    db = ["users", "--database-url", database_url]
    why = ["--reason", "ticket ACC-1"]
    code, out, _ = run_cli(
        monkeypatch,
        capsys,
        *db,
        "add",
        "site1",
        "--name",
        "Sam Site",
        "--role",
        "site",
        "--site",
        str(program.site),
        "--password-stdin",
        "--token",
        *why,
        stdin="a long enough password\n",
    )
    assert code == 0 and f"places={program.site}" in out
    token = out.strip().splitlines()[-1].removeprefix("token: ")
    depot = ["add", "depot1", "--name", "Dee", "--role", "depot", "--no-password", *why]
    code, out, err = run_cli(monkeypatch, capsys, *db, *depot, "--place", str(program.site))
    assert code == 1 and "Site 101 is a clinical_site; a depot user works at depot or" in err
    code, out, err = run_cli(monkeypatch, capsys, *db, *depot)
    assert code == 1 and "a depot user is bound to at least one place" in err
    code, out, err = run_cli(monkeypatch, capsys, *db, *depot, "--place", DEPOT_GLN)  # by GLN
    assert code == 0 and f"places={program.depot}" in out
    code, out, err = run_cli(monkeypatch, capsys, *db, "bind", "depot1", "--place", str(program.plant), *why)
    assert code == 0 and str(program.plant) in out and str(program.depot) in out
    code, out, err = run_cli(
        monkeypatch, capsys, *db, "unbind", "depot1", "--place", str(program.depot), *why
    )
    assert code == 0 and f"places={program.plant} " in out + " "
    code, out, err = run_cli(
        monkeypatch, capsys, *db, "unbind", "depot1", "--place", str(program.plant), *why
    )
    assert code == 1 and "bound to no place" in err
    qa = ["add", "qa1", "--name", "Q", "--role", "qa", "--no-password", "--place", str(program.depot), *why]
    code, out, err = run_cli(monkeypatch, capsys, *db, *qa)
    assert code == 1 and "a qa user acts everywhere: bound to no place" in err
    code, out, _ = run_cli(monkeypatch, capsys, *db, "list")
    assert out.strip().splitlines() == [
        f"depot1 [depot] Dee places={program.plant} (no password: cannot sign)",
        f"site1 [site] Sam Site places={program.site}",
    ]
    code, out, _ = run_cli(monkeypatch, capsys, *db, "token", "site1", "--expires-in", "5", *why)
    second = out.strip()
    assert code == 0 and second.startswith("lt_") and second != token
    identity = Identity.open(database_url)
    try:
        assert identity.authenticate(token).user.places == {program.site}
        assert identity.user("depot1").actor.places == {program.plant}
        assert identity.user("site1").actor.places == {program.site}
        run_cli(monkeypatch, capsys, *db, "disable", "site1", *why)
        with pytest.raises(InvalidCredentials, match="disabled"):
            identity.authenticate(second)
    finally:
        identity.close()


def test_links_for_finds_each_events_seq_and_hash_in_chain_order(database_url: str) -> None:
    ledger = Ledger.open(database_url)
    try:
        program = Program(ledger).reference()
        wanted: list[Any] = [(program.site, 2), (program.trial, 1), (program.site, 1), (program.trial, 9)]
        links = ledger.chain.links_for(wanted)
        rows = {(UUID(r.originator_id), r.originator_version): r for r in ledger.chain.iter_chain()}
        assert [(k.stream, k.version) for k in links] == [
            (program.trial, 1),
            (program.site, 1),
            (program.site, 2),
        ]
        for k in links:
            assert (k.seq, k.chain_hash) == (
                rows[(k.stream, k.version)].seq,
                rows[(k.stream, k.version)].chain_hash,
            )
        everything = [(r.originator_id, r.originator_version) for r in rows.values()] * 2
        assert [k.seq for k in ledger.chain.links_for(everything)] == sorted(r.seq for r in rows.values())
        assert ledger.chain.links_for([]) == []
    finally:
        ledger.close()


@pytest.mark.parametrize("minutes", ["0", "-5", "999999999", "soon"])
def test_lotline_users_token_refuses_a_lifetime_that_is_not_a_positive_number_of_minutes(
    minutes: str, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    identity = Identity.open(database_url)
    try:
        identity.add_user("qa1", name="Quinn QA", role=Role.QA, password=None, **BY_ADMIN)
        with pytest.raises(SystemExit) as exit_:
            argv = ["users", "--database-url", database_url, "token", "qa1", "--expires-in", minutes]
            run_cli(monkeypatch, capsys, *argv)
        assert exit_.value.code == 2
        assert "--expires-in" in capsys.readouterr().err
        with identity.engine.connect() as conn:
            assert conn.execute(select(tokens)).first() is None  # nothing was issued
    finally:
        identity.close()


@pytest.mark.parametrize("ttl", [timedelta(0), timedelta(seconds=-1), timedelta(days=100_000)])
def test_a_token_lifetime_is_positive_and_bounded(ttl: timedelta, database_url: str) -> None:
    identity = Identity.open(database_url)
    try:
        identity.add_user("qa1", name="Quinn QA", role=Role.QA, password=None, **BY_ADMIN)
        with pytest.raises(InvalidInput, match="lifetime") as refused:
            identity.issue_token("qa1", ttl=ttl, **BY_ADMIN)
        assert refused.value.as_dict()["field"] == "ttl"
        short = identity.issue_token("qa1", ttl=timedelta(milliseconds=1), **BY_ADMIN)
        time.sleep(0.01)
        with pytest.raises(InvalidCredentials, match="expired"):
            identity.authenticate(short)
    finally:
        identity.close()
