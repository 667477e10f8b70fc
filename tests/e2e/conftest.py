"""The browser the console's tests drive."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.browser import chromium


@pytest.fixture
def browser() -> Iterator[object]:
    """A headless Chromium (skipped where it is not installed; the test command installs it in CI)."""
    yield from chromium()
