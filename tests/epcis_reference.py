"""GS1's EPCIS 2.0 reference material (schemas, official examples, expected hash IDs) for the tests.

It lives next to the checkout, in `../shared/gs1-epcis/`, and is never copied into the project. A
test that needs it skips when it is absent, except under CI, where that is a failure.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "gs1-epcis"


def reference() -> Path:
    """The reference directory; skips the test when it is missing (fails under CI)."""
    if REFERENCE.is_dir():
        return REFERENCE
    message = f"GS1 EPCIS reference material not found at {REFERENCE.resolve()}"
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{message}; refusing to skip under CI", pytrace=False)
    pytest.skip(message)


def load(*parts: str) -> Any:
    return json.loads(reference().joinpath(*parts).read_text(encoding="utf-8"))


def schema_validator() -> Any:
    """A draft-07 validator of GS1's EPCISDocument JSON schema, with format checks."""
    import jsonschema

    schema = load("schema", "EPCISDocument.schema.json")
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
