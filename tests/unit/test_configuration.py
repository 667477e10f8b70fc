"""Configuration is read in one place and documented in one place: every setting is in the README."""

from __future__ import annotations

import re
from pathlib import Path

from ledger.config import Settings, markdown_table

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_lists_every_setting_with_its_default() -> None:
    table = markdown_table()
    assert table in README, (
        "README.md's Configuration table is out of date; replace it with the output of\n"
        "  python -c 'from ledger.config import markdown_table; print(markdown_table(), end=\"\")'\n" + table
    )
    assert len(table.splitlines()) == 2 + len(Settings.model_fields)


def test_every_lotline_variable_the_code_mentions_is_documented() -> None:
    folders = ("ledger", "projections", "api", "scripts", "lotline_verify", "tests", ".ci")
    sources = [p for folder in folders for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".sh", "")]
    sources += [ROOT / "Dockerfile", ROOT / "docker-compose.yml"]
    mentioned: set[str] = set()
    for path in (p for p in sources if p.is_file()):
        text = path.read_text(encoding="utf-8")
        constants = set(re.findall(r"^(LOTLINE_[A-Z_]+) = ", text, re.MULTILINE))  # Python names
        mentioned |= set(re.findall(r"\bLOTLINE_[A-Z][A-Z_]*[A-Z]\b", text)) - constants
    documented = set(re.findall(r"`(LOTLINE_[A-Z_]+)", README))
    assert {"LOTLINE_DATABASE_URL", "LOTLINE_DEMO", "LOTLINE_TEST_POSTGRES_URL"} <= mentioned
    assert mentioned - documented == set()


def test_settings_come_from_lotline_variables(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LOTLINE_PORT", "8123")
    monkeypatch.setenv("LOTLINE_CHECKPOINT_IN_BACKGROUND", "false")
    settings = Settings(database_url="sqlite:///given.db")
    assert (settings.port, settings.checkpoint_in_background) == (8123, False)
    assert settings.database_url == "sqlite:///given.db"  # an argument (a command-line option) wins
