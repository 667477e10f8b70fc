"""docs/gmp.md names, for each GMP requirement, the test that holds it: every test it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_test_the_gmp_table_names_exists() -> None:
    text = (ROOT / "docs" / "gmp.md").read_text()
    named = re.findall(r"`((?:unit|api|integration|e2e)/[\w/]+\.py)(?:::(\w+))?`", text)
    assert len(named) > 30
    for path, test in named:
        source = (ROOT / "tests" / path).read_text()
        if test:
            assert re.search(rf"^def {test}\(", source, re.M), f"docs/gmp.md names {path}::{test}"
