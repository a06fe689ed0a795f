"""The browser tests' fixtures: Debian's Chromium (`make_print_stack` is the root conftest's)."""

from __future__ import annotations

from tests.e2e.chromium import browser_fixture

__all__ = ["browser_fixture"]
