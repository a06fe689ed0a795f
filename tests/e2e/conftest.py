"""The browser tests' fixtures: Debian's Chromium, and the print service's stacks."""

from __future__ import annotations

from tests.e2e.chromium import browser_fixture
from tests.printing.conftest import make_print_stack

__all__ = ["browser_fixture", "make_print_stack"]
