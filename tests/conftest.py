"""Shared by every test: the signal dispositions the suite relies on (tests/signals.py)."""

from __future__ import annotations

import pytest

from tests import signals


@pytest.fixture(scope="session", autouse=True)
def default_signals() -> None:
    """Whatever the suite was started from (nohup ... &, a terminal, CI), its children start clean."""
    signals.reset_in_pytest()
